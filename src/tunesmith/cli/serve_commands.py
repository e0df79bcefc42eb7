"""Commands around a served model: `serve`, `monitor`, `feedback export`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from tunesmith.cli.arguments import add_set


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("serve", help="OpenAI-compatible HTTP server for runs (batched; metrics; request log)")
    p.add_argument("targets", nargs="+", metavar="RUN_OR_MODEL",
                   help="run folder(s) (adapter runs on one base share it; `model` in a request picks one, `base` "
                        "the base), or one model folder")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (anything but loopback needs --api-key)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", help="require `Authorization: Bearer KEY` (default: $TUNESMITH_API_KEY)")
    p.add_argument("--shadow", metavar="RUN", help="also answer every request to the first run with this run, and "
                   "log its answer beside the primary's (never returned)")
    p.add_argument("--log-dir", help="request log folder (default: the first run's serve_logs/)")
    p.add_argument("--no-log-content", action="store_true",
                   help="log counts and timings only, not the prompts and answers")
    p.add_argument("--log-max-mb", type=float, default=64.0, help="rotate the request log at this size")
    p.add_argument("--max-tokens", type=int, default=512, help="cap (and default) of a request's max_tokens")
    p.add_argument("--max-prompt-tokens", type=int, default=4096, help="longer prompts get a 400")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds before a request is cancelled")
    p.add_argument("--max-batch", type=int, default=32, help="requests decoded together at most")

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


def _serve(args: argparse.Namespace) -> int:
    from tunesmith.deploy.server import ServerSettings, serve

    settings = ServerSettings(
        host=args.host, port=args.port, api_key=args.api_key or os.environ.get("TUNESMITH_API_KEY") or None,
        log_dir=Path(args.log_dir) if args.log_dir else None, log_content=not args.no_log_content,
        log_max_bytes=int(args.log_max_mb * 2**20),
        max_prompt_tokens=args.max_prompt_tokens, max_tokens=args.max_tokens, request_timeout_s=args.timeout,
        max_batch=args.max_batch,
    )
    return serve(args.targets, settings, shadow=args.shadow)


def _monitor(args: argparse.Namespace) -> int:
    from tunesmith.deploy import monitor_log
    from tunesmith.deploy.monitor_page import render_monitor

    result = monitor_log(args.log_dir, args.run, args.overrides)
    print(render_monitor(result, as_json=args.json, html=args.html))
    return result.exit_code


def _feedback_export(args: argparse.Namespace) -> int:
    from tunesmith.deploy import export_feedback

    result = export_feedback(args.log_dir, args.output_path, args.run, args.min_rating, args.overwrite)
    print(result.render())
    return result.exit_code


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": _serve,
    "monitor": _monitor,
    "feedback export": _feedback_export,
}
