"""`plan`: what a run will take (rows, tokens, steps, time, peak memory, disk, cost) before it trains."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

from tunesmith.cli.arguments import add_set, positive
from tunesmith.config import load_config


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("plan", help="before training: rows, tokens per epoch, steps, and estimates of time, "
                            "peak memory, disk and cost (from a few measured steps, or --no-probe)")
    p.add_argument("config")
    p.add_argument("--no-probe", action="store_true", help="load no model: time from the stated throughput of "
                   "this device kind, memory computed from the parameter counts")
    p.add_argument("--price-per-hour", type=positive(float), metavar="X",
                   help="price of an hour of this machine: the plan adds the cost")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    add_set(p)


def _plan(args: argparse.Namespace) -> int:
    from tunesmith.data import RunInputs
    from tunesmith.models import check_method_available
    from tunesmith.plan import make_plan, render_plan, summary_line

    config = load_config(args.config, args.overrides)
    check_method_available(config.method)
    plan = make_plan(config, RunInputs(config), probe=not args.no_probe, price_per_hour=args.price_per_hour)
    if args.json:
        print(json.dumps(plan.to_json(), indent=2))
    else:
        print(render_plan(plan))
        print(summary_line(plan))
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "plan": _plan,
}
