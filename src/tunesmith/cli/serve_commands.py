"""`serve`: an OpenAI-compatible HTTP server for runs; `promote`: point the marker a watching server serves at a
run."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from tunesmith.cli.arguments import add_allowed_host, add_set, positive
from tunesmith.errors import ConfigError


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("serve", help="OpenAI-compatible HTTP server for runs (batched; metrics; request log)")
    p.add_argument("targets", nargs="+", metavar="RUN_OR_MODEL",
                   help="run folder(s) (adapter runs on one base share it; `model` in a request picks one, `base` "
                        "the base), or one model folder")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (anything but loopback needs --api-key)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", help="require `Authorization: Bearer KEY` (default: $TUNESMITH_API_KEY)")
    add_allowed_host(p)
    p.add_argument("--watch", action="store_true",
                   help="the one target is a marker (`tunesmith promote`): serve its run and swap to the new one, "
                        "without dropping a request, when it is promoted")
    p.add_argument("--shadow", metavar="RUN", help="also answer every request to the first run with this run, and "
                   "log its answer beside the primary's (never returned)")
    p.add_argument("--log-dir", help="request log folder (default: the first run's serve_logs/; with --watch "
                                     "MARKER-serve_logs/ beside the marker)")
    p.add_argument("--no-log-content", action="store_true",
                   help="log counts and timings only, not the prompts and answers")
    p.add_argument("--log-max-mb", type=positive(), default=64.0, help="rotate the request log at this size")
    p.add_argument("--max-tokens", type=positive(int), default=512, help="cap (and default) of a request's max_tokens")
    p.add_argument("--max-prompt-tokens", type=positive(int), default=4096, help="longer prompts get a 400")
    p.add_argument("--timeout", type=positive(), default=120.0, help="seconds before a request is cancelled")
    p.add_argument("--max-request-mb", type=positive(), default=4.0,
                   help="larger request bodies get a 413 before they are read")
    p.add_argument("--max-batch", type=positive(int), default=32, help="requests decoded together at most")
    p.add_argument("--force", action="store_true", help="serve a run even when it failed its release gate")
    add_set(p, "a serve: setting for every served run", "serve.min_confidence=0.8")

    p = commands.add_parser("promote", help="point the `current` marker at a run that passed its release gate (a "
                                            "server started with `serve MARKER --watch` swaps to it)")
    p.add_argument("run_dir")
    p.add_argument("--marker", metavar="PATH", help="the marker link (default: current beside the run)")
    p.add_argument("--force", action="store_true", help="promote a run whose gate failed, is stale or never ran")


def _api_key(args: argparse.Namespace) -> str | None:
    from tunesmith.web.bind_rules import API_KEY_VARIABLE

    return args.api_key or os.environ.get(API_KEY_VARIABLE) or None


def _check_bind(args: argparse.Namespace) -> None:
    """Refuse an exposed bind without a key now: `tunesmith.serve` imports torch (seconds) before it could."""
    from tunesmith.web.bind_rules import SERVER_BIND

    SERVER_BIND.check(args.host, _api_key(args))


def _serve(args: argparse.Namespace) -> int:
    from tunesmith.results.gate import require_gate
    from tunesmith.serve import ServerSettings, serve

    if args.watch and len(args.targets) != 1:
        raise ConfigError("--watch", f"watches one marker; {len(args.targets)} targets were given",
                          "tunesmith serve MARKER --watch (serve a candidate beside it with --shadow)")
    for target in [*args.targets, *([args.shadow] if args.shadow else [])]:
        require_gate(target, "serve", args.force)  # a model folder has no gate.json: nothing to refuse
    settings = ServerSettings(
        host=args.host, port=args.port, api_key=_api_key(args),
        allowed_hosts=tuple(args.allowed_host),
        log_dir=Path(args.log_dir) if args.log_dir else None, log_content=not args.no_log_content,
        log_max_bytes=int(args.log_max_mb * 2**20),
        max_prompt_tokens=args.max_prompt_tokens, max_tokens=args.max_tokens, request_timeout_s=args.timeout,
        max_request_bytes=int(args.max_request_mb * 2**20), max_batch=args.max_batch,
        watch=Path(args.targets[0]) if args.watch else None,
    )
    return serve(args.targets, settings, shadow=args.shadow, serve_overrides=args.overrides)


def _promote(args: argparse.Namespace) -> int:
    from tunesmith.promotion import promote

    record = promote(args.run_dir, args.marker, force=args.force)
    print(f"{record['marker']} -> {record['to']} (was {record['from'] or 'nothing'}); {record['gate']}")
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": _serve,
    "promote": _promote,
}
PRECHECKS: dict[str, Callable[[argparse.Namespace], None]] = {"serve": _check_bind}
"""Run before logging is set up and before the handler's imports (`tunesmith.cli.PRECHECKS`)."""
