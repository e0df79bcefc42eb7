"""Commands that start work from a config: `init`, `run`, `train`, `data check|clean`, `config`."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from tunesmith import distributed
from tunesmith.cli.arguments import add_processes, add_set, new_or_resumed_run
from tunesmith.config import dump_config, load_config
from tunesmith.errors import NoUsableRowsError
from tunesmith.run_dir import check_out_target


def add_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("init", help="write a commented starter config for a data file (format, columns, labels "
                            "and max_length detected)")
    p.add_argument("data", metavar="DATA", help="data file (JSONL, JSON, CSV, Parquet, ...), glob or dataset folder")
    p.add_argument("--test", metavar="FILE", help="test file (default: a fraction of DATA is held out for testing)")
    p.add_argument("--out", default="config.yaml", help="config file to write (default: config.yaml)")
    p.add_argument("--overwrite", action="store_true", help="replace --out when it exists")

    p = commands.add_parser("run", help="data check, train, evaluate vs base, export, gate (with `gate:`; exit 1 "
                            "when it failed) and report, in one run folder")
    p.add_argument("config")
    p.add_argument("--resume", action="store_true",
                   help="continue the newest run of this config from its last checkpoint")
    add_processes(p)
    add_set(p)

    p = commands.add_parser("train", help="fine-tune only (writes checkpoints and the best weights)")
    p.add_argument("config")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--run-dir", help="run folder to create or resume (default: a new one under output.dir)")
    add_processes(p)
    add_set(p)

    p = commands.add_parser("data", help="inspect data")
    data_commands = p.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    q = data_commands.add_parser(
        "check", help="quality report: unreadable rows, duplicates, leakage, labels, lengths, template round trip "
        "(exit 0 clean, 1 findings, 2 unreadable rows)")
    q.add_argument("target", help="a run config (YAML) or a data file")
    q.add_argument("--json", action="store_true", help="print the report as JSON")
    add_set(q)
    q = data_commands.add_parser("clean", help="write a copy of a data file without the rows the check flags")
    q.add_argument("input_path", metavar="IN", help="data file, glob (`**` for any depth) or dataset folder to read "
                   "(never modified)")
    q.add_argument("output_path", metavar="OUT", help="file to write, in the input's format family")
    q.add_argument("--config", help="run config whose data settings (format, columns, check) to use")
    q.add_argument("--drop", metavar="KIND,KIND", help="finding kinds to remove (default: data.check.drop)")
    q.add_argument("--overwrite", action="store_true", help="replace OUT when it exists (never one of the inputs)")
    add_set(q)

    p = commands.add_parser("config", help="print a config with defaults and overrides resolved")
    p.add_argument("config")
    add_set(p)


def _init(args: argparse.Namespace) -> int:
    from tunesmith.starter import write_starter_config

    print(write_starter_config(args.data, args.test, check_out_target(args.out), args.overwrite).render())
    return 0


def _run(args: argparse.Namespace) -> int:
    from tunesmith.pipeline import run_pipeline
    from tunesmith.results.gate import gate_line, read_gate

    config, run = new_or_resumed_run(args)
    run_pipeline(config, run, resume=args.resume)
    if not distributed.is_main():
        return 0
    print(f"report: {run.report_html}")
    print(f"run folder: {run.root}")
    if config.gate is None:
        return 0
    gate = read_gate(run.gate_json)  # the gate stage wrote it before the report
    print(gate_line(gate))
    return 0 if gate["passed"] else 1


def _train(args: argparse.Namespace) -> int:
    from tunesmith.pipeline import run_pipeline

    config, run = new_or_resumed_run(args)
    run_pipeline(config, run, resume=args.resume, until="train")
    if distributed.is_main():
        print(f"run folder: {run.root}")
    return 0


def _data_check(args: argparse.Namespace) -> int:
    from tunesmith.data import run_check

    try:
        text, code = run_check(args.target, args.overrides, args.json)
    except NoUsableRowsError as error:
        print(error.report or "")  # every bad row; the error line (stderr) names the first
        raise
    print(text)
    return code


def _data_clean(args: argparse.Namespace) -> int:
    from tunesmith.data.check.clean import run_clean

    check_out_target(args.output_path, "OUT")
    print(run_clean(args.input_path, args.output_path, args.config, args.drop, args.overrides, args.overwrite))
    return 0


def _config(args: argparse.Namespace) -> int:
    print(dump_config(load_config(args.config, args.overrides)), end="")
    return 0


HANDLERS: dict[str, Callable[[argparse.Namespace], int]] = {
    "init": _init,
    "run": _run,
    "train": _train,
    "data check": _data_check,
    "data clean": _data_clean,
    "config": _config,
}
