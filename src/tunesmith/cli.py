"""The `tunesmith` command: a thin layer that parses arguments and calls the library.

Every user mistake surfaces as a `TunesmithError`, printed on one line (no traceback), exit code 2
(`data check` exits 1 when it found problems in readable data, 2 when it listed unreadable rows).
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from tunesmith.errors import TunesmithError

log = logging.getLogger("tunesmith")


def _add_set(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.learning_rate=1e-4 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunesmith", description="Supervised fine-tuning of LLMs, end to end.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show library warnings and debug logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("run", help="data check, train, evaluate vs base, export and report, in one run folder")
    p.add_argument("config")
    p.add_argument("--resume", action="store_true", help="continue the newest run of this config from its last checkpoint")
    _add_set(p)

    p = commands.add_parser("train", help="fine-tune only (writes checkpoints and the best weights)")
    p.add_argument("config")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--run-dir", help="run folder to create or resume (default: a new one under output.dir)")
    _add_set(p)

    p = commands.add_parser("data", help="inspect data")
    data_commands = p.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")
    q = data_commands.add_parser(
        "check", help="quality report: unreadable rows, duplicates, leakage, labels, lengths, template round trip "
        "(exit 0 clean, 1 findings, 2 unreadable rows)")
    q.add_argument("target", help="a run config (YAML) or a data file")
    q.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_set(q)
    q = data_commands.add_parser("clean", help="write a copy of a data file without the rows the check flags")
    q.add_argument("source", metavar="IN", help="data file, glob or dataset folder to read (never modified)")
    q.add_argument("target", metavar="OUT", help="file to write, in the input's format family")
    q.add_argument("--config", help="run config whose data settings (format, columns, check) to use")
    q.add_argument("--drop", metavar="KIND,KIND", help="finding kinds to remove (default: data.check.drop)")
    _add_set(q)

    p = commands.add_parser("config", help="print a config with defaults and overrides resolved")
    p.add_argument("config")
    _add_set(p)

    for name, text in [("eval", "evaluate the tuned model (and the base) on the test split"),
                       ("compare", "base vs tuned metrics side by side"),
                       ("export", "write the PEFT adapter and the merged safetensors model"),
                       ("report", "(re)build report.md and report.html")]:
        p = commands.add_parser(name, help=text)
        p.add_argument("run_dir")
        _add_set(p)
        if name == "eval":
            p.add_argument("--no-base", action="store_true", help="skip the base model")

    p = commands.add_parser("chat", help="interactive chat with the tuned model (streams tokens)")
    p.add_argument("run_dir")
    p.add_argument("--system", help="system prompt (default: the run's data.system_prompt)")
    p.add_argument("--max-new-tokens", type=int, default=256)
    _add_set(p)

    p = commands.add_parser("generate", help="answer one prompt with the tuned model")
    p.add_argument("run_dir")
    p.add_argument("--prompt", required=True)
    p.add_argument("--system", help="system prompt (default: the run's data.system_prompt)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    _add_set(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return _dispatch(args) or 0
    except TunesmithError as error:
        print(f"tunesmith: error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("tunesmith: interrupted", file=sys.stderr)
        return 130


def _dispatch(args: argparse.Namespace) -> int | None:
    from tunesmith.config import load_config

    if args.command == "data" and args.data_command == "clean":
        from tunesmith.data.clean import run_clean

        print(run_clean(args.source, args.target, args.config, args.drop, args.overrides))
        return 0
    if args.command == "data":
        from tunesmith.data import run_check

        text, code = run_check(args.target, args.overrides, args.json)
        print(text)
        return code
    if args.command == "config":
        import yaml

        print(yaml.safe_dump(load_config(args.config, args.overrides).model_dump(mode="json"), sort_keys=False))
        return 0
    if args.command in ("run", "train"):
        from tunesmith.pipeline import create_run, find_resumable_run, run_pipeline
        from tunesmith.run_dir import RunDir

        config = load_config(args.config, args.overrides)
        if getattr(args, "run_dir", None):
            run = RunDir(args.run_dir)
            if not args.resume:
                run = create_run(config.model_copy(update={"output": config.output.model_copy(
                    update={"dir": str(run.root.parent), "name": run.root.name})}), args.config)
        else:
            run = find_resumable_run(config, args.config) if args.resume else create_run(config, args.config)
        if args.command == "run":
            run_pipeline(config, run, resume=args.resume)
            print(f"report: {run.report_html}")
        else:
            from tunesmith.pipeline import check_run_data
            from tunesmith.train import train

            train(config, run, check_run_data(config, run), resume=args.resume)
        print(f"run folder: {run.root}")
        return 0
    _apply_run_overrides(args.run_dir, args.overrides)
    if args.command == "eval":
        from tunesmith.evaluate import evaluate_run, format_comparison

        print(format_comparison(evaluate_run(args.run_dir, include_base=False if args.no_base else None)))
    elif args.command == "compare":
        from tunesmith.evaluate import compare_run

        print(compare_run(args.run_dir))
    elif args.command == "export":
        from tunesmith.deploy import export_run

        for name, path in export_run(args.run_dir).items():
            print(f"{name}: {path}")
    elif args.command == "report":
        from tunesmith.report import build_report

        for path in build_report(args.run_dir):
            print(path)
    elif args.command == "chat":
        from tunesmith.deploy import chat_loop

        chat_loop(args.run_dir, max_new_tokens=args.max_new_tokens, system=args.system)
    elif args.command == "generate":
        from tunesmith.deploy import generate_text

        print(generate_text(args.run_dir, args.prompt, max_new_tokens=args.max_new_tokens, system=args.system))
    return 0


def _apply_run_overrides(run_dir: str, overrides: list[str]) -> None:
    """`--set` on a run folder updates its saved config, so the folder keeps recording what was done."""
    if not overrides:
        return
    import yaml

    from tunesmith.config import apply_overrides, save_config, validate_config
    from tunesmith.run_dir import RunDir

    run = RunDir(run_dir)
    run.config()  # fails clearly when this is not a run folder
    raw = yaml.safe_load(run.config_path.read_text(encoding="utf-8"))
    save_config(validate_config(apply_overrides(raw, overrides)), run.config_path)


def _configure_logging(verbose: bool) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(message)s",
        handlers=[RichHandler(show_path=False, show_time=False, markup=False)],
    )
    if not verbose:
        # Library chatter (deprecation notices, per-file loading bars) buries what the user needs to read.
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="torch")
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        for name in ("datasets", "peft", "accelerate"):
            logging.getLogger(name).setLevel(logging.ERROR)


if __name__ == "__main__":
    sys.exit(main())
