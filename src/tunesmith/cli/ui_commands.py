"""The web UI: `tunesmith ui`."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from tunesmith.cli.arguments import add_allowed_host


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("ui", help="local web UI: runs, live curves, compare, playground, blind review")
    p.add_argument("runs_dir", nargs="?", default="runs", metavar="RUNS_DIR",
                   help="the folder of run folders (and sweep folders) to show (default: runs)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (anything but loopback needs --token)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--token", help="require this token on every page and API call (default: $TUNESMITH_UI_TOKEN); "
                                   "open the printed link once, a cookie keeps it")
    add_allowed_host(p)
    p.add_argument("--max-tokens", type=int, default=256, help="the most tokens a playground answer may have")
    p.add_argument("--reviewer-only", action="store_true",
                   help="serve the blind review pages only, for reviewers: runs, results, predictions, compare and "
                        "the playground answer 403")


def _token(args: argparse.Namespace) -> str | None:
    from tunesmith.web.bind_rules import TOKEN_VARIABLE

    return args.token or os.environ.get(TOKEN_VARIABLE) or None


def _check_bind(args: argparse.Namespace) -> None:
    """Refuse an exposed bind without a token now: `tunesmith.ui` imports torch (seconds) before it could."""
    from tunesmith.web.bind_rules import UI_BIND

    UI_BIND.check(args.host, _token(args))


def _ui(args: argparse.Namespace) -> int:
    from tunesmith.ui import UiSettings, serve_ui

    return serve_ui(UiSettings(runs_dir=Path(args.runs_dir), host=args.host, port=args.port, token=_token(args),
                               allowed_hosts=tuple(args.allowed_host), max_tokens=args.max_tokens,
                               reviewer_only=args.reviewer_only))


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {"ui": _ui}
PRECHECKS: dict[str, Callable[[argparse.Namespace], None]] = {"ui": _check_bind}
"""Run before logging is set up and before the handler's imports (`tunesmith.cli.PRECHECKS`)."""
