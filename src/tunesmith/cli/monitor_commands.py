"""Commands over a served model's request log: `monitor` and `feedback export`."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from tunesmith.cli.arguments import add_set


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser(
        "monitor", help="traffic, errors, latency and drift of a served model from the request log of `tunesmith "
        "serve` (exit 0 when every threshold holds, 1 when one is breached)")
    p.add_argument("log_dir", help="the log folder of `tunesmith serve` (a run's serve_logs/ or its --log-dir)")
    p.add_argument("--run", help="run whose training data and monitor: thresholds to judge by (default: the primary "
                                 "model's run in the log folder's served.json)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("--html", metavar="OUT.html", help="also write a page with figures")
    add_set(p, "a threshold of the monitor: section", "monitor.max_error_rate=0.1")

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
    q.add_argument("--overwrite", action="store_true", help="replace OUT when it exists")


def _monitor(args: argparse.Namespace) -> int:
    from tunesmith.monitor import monitor_log
    from tunesmith.monitor.page import render_monitor

    result = monitor_log(args.log_dir, args.run, args.overrides)
    print(render_monitor(result, as_json=args.json, html=args.html))
    return result.exit_code


def _feedback_export(args: argparse.Namespace) -> int:
    from tunesmith.monitor import export_feedback

    result = export_feedback(args.log_dir, args.output_path, args.run, args.min_rating, args.overwrite)
    print(result.render())
    return result.exit_code


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "monitor": _monitor,
    "feedback export": _feedback_export,
}
