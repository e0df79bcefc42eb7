"""The `tunesmith` command: a thin layer that parses arguments and calls the library.

Each group of commands lives in its own module (`*_commands.py`: `add_commands` builds its parsers, `HANDLERS` maps
each command to a function that calls the same library functions a Python user calls). Every user
mistake surfaces as a `TunesmithError`, printed on one line (no traceback), exit code 2 (`data check` exits 1
when it found problems in readable data, 2 when it listed unreadable rows; `monitor` exits 1 when a threshold is
breached; `gate` exits 1 when the run failed its gate, and `run` when the gate of its `gate:` section failed;
`feedback export` and `label export` exit 1 when no row qualified). Handlers import the stages they run
when they run: importing every stage (torch, transformers, peft) would cost `tunesmith --help` seconds, and the
optional parts (`tunesmith.extras`) may not be installed.
"""

from __future__ import annotations

import os

from tunesmith.threads import quiet_waits

# First of all, before any import could load torch: OpenMP reads its environment once, when torch loads it.
os.environ.update(quiet_waits(os.environ))

import argparse
import logging
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler

from tunesmith import distributed
from tunesmith.atomic import write_failure
from tunesmith.cli import (
    experiment_commands,
    gate_commands,
    label_commands,
    monitor_commands,
    pipeline_commands,
    plan_commands,
    retrieval_commands,
    review_commands,
    run_commands,
    serve_commands,
    ui_commands,
)
from tunesmith.cli.arguments import without_processes
from tunesmith.errors import TunesmithError
from tunesmith.extras import MissingExtraError, extra_of, require_extras
from tunesmith.run_dir import name_this_command

GROUPS = [pipeline_commands, plan_commands, run_commands, gate_commands, experiment_commands, serve_commands,
          monitor_commands, label_commands, review_commands, retrieval_commands, ui_commands]
"""In the order `tunesmith --help` lists them."""

COMMAND_EXTRAS: dict[str, tuple[str, ...]] = {
    "serve": ("serve",),
    "ui": ("ui",),
    "sweep": ("sweep",),
    "compare-rag": ("rag",),
    "rag index": ("rag",),
    "rag query": ("rag",),
}
"""The extras (`tunesmith.extras.EXTRAS`) a command needs whatever its arguments; checked before it runs."""

HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    name: handler for group in GROUPS for name, handler in group.HANDLERS.items()}
PRECHECKS: dict[str, Callable[[argparse.Namespace], None]] = {
    name: check for group in GROUPS for name, check in getattr(group, "PRECHECKS", {}).items()}
"""Checks a command makes with light imports only, before logging is set up (it imports transformers) and before
its handler imports the stages: a refusal that needs no model (binding beyond loopback without a secret) is then
at once, not after seconds of imports."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunesmith", description="Supervised fine-tuning of LLMs, end to end.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show library warnings and debug logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    subcommand = getattr(args, f"{args.command}_command", None)
    command = f"{args.command} {subcommand}" if subcommand else args.command
    name_this_command(f"tunesmith {command}")  # what a run folder's lock file names: no argument, no secret
    try:
        require_extras(f"tunesmith {command}", *COMMAND_EXTRAS.get(command, ()))
        if command in PRECHECKS:
            PRECHECKS[command](args)
        _configure_logging(args.verbose)
        if getattr(args, "processes", 1) > 1:
            distributed.launch(without_processes(argv), args.processes)  # each process runs this command
            return 0
        if getattr(args, "processes", 1) < 1:
            raise TunesmithError("--processes must be 1 or more")
        return _dispatch(command, args)
    except TunesmithError as error:
        print(f"tunesmith: error: {error}", file=sys.stderr)
        return error.exit_code
    except OSError as error:  # a write refused for space or permission anywhere: one line, not a traceback
        explained = write_failure(error, Path(error.filename or "."))
        if explained is None:
            raise
        print(f"tunesmith: error: {explained}", file=sys.stderr)
        return explained.exit_code
    except KeyboardInterrupt:
        print("tunesmith: interrupted", file=sys.stderr)
        return 130
    except RuntimeError as error:
        if not distributed.lost_a_peer(error):
            raise
        print(f"tunesmith: error: process {distributed.rank()} lost contact with another process of the job",
              file=sys.stderr)
        return 1


# ---- handlers: parsed arguments in, exit code out ---------------------------------------------------------------


def _dispatch(command: str, args: argparse.Namespace) -> int:
    """Run the command's handler. An optional module it needs only for these arguments (e.g. `rag:` in the config of
    `tunesmith run`) and finds missing is reported as the extra to install."""
    try:
        return HANDLERS[command](args)
    except ModuleNotFoundError as error:
        extra = extra_of(error)
        if extra is None:
            raise
        raise MissingExtraError(f"tunesmith {command}", [extra]) from error


def _configure_logging(verbose: bool) -> None:
    # In a job of several processes, rank 0 speaks for all; the others say only what goes wrong.
    level = logging.DEBUG if verbose else logging.INFO if distributed.is_main() else logging.ERROR
    logging.basicConfig(
        level=level, format="%(message)s",
        # On stderr: stdout is the command's output (`plan --json`, `generate`, `data check --json`) for a pipe.
        handlers=[RichHandler(console=Console(stderr=True), show_path=False, show_time=False, markup=False)],
    )
    if not verbose:
        # Library chatter (deprecation notices, per-file loading bars) buries what the user needs to read.
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="torch")
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        for name in ("datasets", "peft", "accelerate", "gguf", "sentence_transformers", "bm25s", "faiss"):
            logging.getLogger(name).setLevel(logging.ERROR)
