"""Commands over a served model's request log: `monitor` and `feedback export`."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from tunesmith.cli.arguments import add_set
from tunesmith.run_dir import check_out_target


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "monitor", help="traffic, errors, latency and drift (against the run's reference) of a served model from the "
        "request log of `tunesmith serve`, window by window (exit 0 when every window holds, 1 when one breaches)")
    p.add_argument("log_dir", help="the log folder of `tunesmith serve` (a run's serve_logs/ or its --log-dir)")
    p.add_argument("--run", help="run whose reference and monitor: settings to judge by (default: the primary "
                                 "model's run in the log folder's served.json)")
    p.add_argument("--window", metavar="SIZE",
                   help="judge the log in windows: a duration (30m, 1h, 1d; aligned to the clock in UTC) or a number "
                        "of answered requests of the run's model (50); default: the whole log is one window")
    p.add_argument("--since", metavar="WHEN",
                   help="only the records from WHEN on: an ISO time (2026-11-30T08:00, UTC unless it names a zone) or "
                        "a duration back from the log's last record (24h)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--html", metavar="OUT.html", help="also write a page with figures")
    add_set(p, "a setting of the monitor: section", "monitor.false_alarm_rate=0.05")

    p = commands.add_parser("feedback", help="use what users said about served answers")
    feedback_commands = p.add_subparsers(dest="feedback_command", required=True, metavar="SUBCOMMAND")
    q = feedback_commands.add_parser(
        "export", help="write corrected and approved answers as training rows in the run's own data format")
    q.add_argument("log_dir", help="the log folder of `tunesmith serve`")
    q.add_argument("output_path", metavar="OUT", help="JSON Lines file to write (*.jsonl)")
    q.add_argument("--run", help="run whose data format and columns to write (default: the primary model's run in "
                                 "served.json)")
    q.add_argument("--min-rating", choices=["up", "none"], default="up",
                   help="up (default): only answers rated up or corrected; none: unrated answers too")
    q.add_argument("--pairs", action="store_true",
                   help="write prompt/chosen/rejected pairs instead: a correction beats the served answer, an answer "
                        "rated down loses to an accepted one for the same prompt (what gives no pair is counted)")
    q.add_argument("--overwrite", action="store_true", help="replace OUT when it exists")


def _monitor(args: argparse.Namespace) -> int:
    from tunesmith.monitor import monitor_log
    from tunesmith.monitor.page import render_monitor

    if args.html is not None:
        check_out_target(args.html, "--html")  # before the log is read: a wrong target fails at once
    result = monitor_log(args.log_dir, args.run, args.overrides, window=args.window, since=args.since)
    print(render_monitor(result, as_json=args.json, html=args.html))
    return result.exit_code


def _feedback_export(args: argparse.Namespace) -> int:
    from tunesmith.monitor import export_feedback

    if args.pairs:
        from tunesmith.errors import ConfigError
        from tunesmith.monitor.feedback_pairs import export_feedback_pairs

        if args.min_rating != "up":
            raise ConfigError("--min-rating", "pairs are made of rated and corrected answers only",
                              "leave out --min-rating with --pairs")

        pairs = export_feedback_pairs(args.log_dir, check_out_target(args.output_path, "OUT"), args.run,
                                      args.overwrite)
        print(pairs.render("request"))
        return pairs.exit_code

    result = export_feedback(args.log_dir, check_out_target(args.output_path, "OUT"), args.run, args.min_rating,
                             args.overwrite)
    print(result.render())
    return result.exit_code


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "monitor": _monitor,
    "feedback export": _feedback_export,
}
