"""`gate`: judge a run before it may replace the model in service (exit 0 passed, 1 failed)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from tunesmith.cli.arguments import add_set, existing_run
from tunesmith.run_dir import RunDir


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("gate", help="release gate: intervals against the base, the best baseline and the run "
                            "in service; calibration, valid answers, general ability, latency, export size; writes "
                            "gate.json (exit 0 passed, 1 failed)")
    p.add_argument("run_dir")
    p.add_argument("--against", metavar="OLD_RUN", help="also compare with the run in service, on this run's test "
                   "rows (its predictions when it answered the same rows, else its model evaluated on them)")
    add_set(p, "a gate: setting of the run", "gate.margin=0.02")


def _gate(args: argparse.Namespace) -> int:
    from tunesmith.data import RunInputs
    from tunesmith.gate import format_gate, run_gate

    config, run = existing_run(args)
    against = RunDir(args.against) if args.against else None
    gate = run_gate(config, run, RunInputs(config), against=against)
    print(format_gate(gate))
    print(f"gate.json: {run.gate_json}")
    return 0 if gate["passed"] else 1


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "gate": _gate,
}
