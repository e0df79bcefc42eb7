"""The `tunesmith` command: a thin layer that parses arguments and calls the library.

`HANDLERS` maps each command to a function that calls the same library functions a Python user calls. Every user
mistake surfaces as a `TunesmithError`, printed on one line (no traceback), exit code 2 (`data check` exits 1
when it found problems in readable data, 2 when it listed unreadable rows; `monitor` exits 1 when a threshold is
breached; `feedback export` exits 1 when no row qualified). Handlers import the stages they run
when they run: importing every stage (torch, transformers, peft) would cost `tunesmith --help` seconds.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import get_args

from rich.logging import RichHandler

from tunesmith import distributed
from tunesmith.atomic import write_failure
from tunesmith.config import RunConfig, apply_overrides, dump_config, load_config, save_config, validate_config
from tunesmith.config.changes import run_folder_config
from tunesmith.config.vocabulary import DEFAULT_GGUF_QUANT, EXPORT_FORMATS, ExportFormat, GgufQuant
from tunesmith.errors import NoUsableRowsError, TunesmithError
from tunesmith.run_dir import RunDir

log = logging.getLogger("tunesmith")


def _add_processes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="run in N local processes (one per GPU; on CPU they share the cores), each on its share "
                             "of every batch; for several machines use `accelerate launch ... -m tunesmith` instead")


def _add_set(parser: argparse.ArgumentParser, what: str = "a config value",
             example: str = "train.learning_rate=1e-4") -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help=f"override {what}, e.g. --set {example} (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunesmith", description="Supervised fine-tuning of LLMs, end to end.")
    parser.add_argument("-v", "--verbose", action="store_true", help="show library warnings and debug logs")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("init", help="write a commented starter config for a data file (format, columns, labels "
                            "and max_length detected)")
    p.add_argument("data", metavar="DATA", help="data file (JSONL, JSON, CSV, Parquet, ...), glob or dataset folder")
    p.add_argument("--test", metavar="FILE", help="test file (default: a fraction of DATA is held out for testing)")
    p.add_argument("--out", default="config.yaml", help="config file to write (default: config.yaml)")
    p.add_argument("--overwrite", action="store_true", help="replace --out when it exists")

    p = commands.add_parser("run", help="data check, train, evaluate vs base, export and report, in one run folder")
    p.add_argument("config")
    p.add_argument("--resume", action="store_true",
                   help="continue the newest run of this config from its last checkpoint")
    _add_processes(p)
    _add_set(p)

    p = commands.add_parser("train", help="fine-tune only (writes checkpoints and the best weights)")
    p.add_argument("config")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--run-dir", help="run folder to create or resume (default: a new one under output.dir)")
    _add_processes(p)
    _add_set(p)

    p = commands.add_parser("sweep", help="hyperparameter search (Optuna) on the validation split; the best trial is "
                            "evaluated on test, exported and reported")
    p.add_argument("config", help="a run config with a sweep: section")
    p.add_argument("--resume", action="store_true", help="continue the newest sweep of this config")
    p.add_argument("--storage", metavar="URL", help="Optuna database shared by workers on several machines, e.g. "
                   "postgresql://user:pass@host/db (default: $TUNESMITH_SWEEP_STORAGE, else sweep.db in the sweep "
                   "folder)")
    p.add_argument("--workers", type=int, default=1, metavar="N", help="local worker processes on the study")
    p.add_argument("--sweep-dir", help="the sweep folder (default: a new one under output.dir)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # a process started by --workers
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
    q.add_argument("input_path", metavar="IN", help="data file, glob or dataset folder to read (never modified)")
    q.add_argument("output_path", metavar="OUT", help="file to write, in the input's format family")
    q.add_argument("--config", help="run config whose data settings (format, columns, check) to use")
    q.add_argument("--drop", metavar="KIND,KIND", help="finding kinds to remove (default: data.check.drop)")
    q.add_argument("--overwrite", action="store_true", help="replace OUT when it exists (never one of the inputs)")
    _add_set(q)

    p = commands.add_parser("config", help="print a config with defaults and overrides resolved")
    p.add_argument("config")
    _add_set(p)

    for name, text in [("eval", "evaluate the tuned model (and the base) on the test split"),
                       ("compare", "base vs tuned metrics side by side (or --against a previous run)"),
                       ("export", "write the PEFT adapter and the merged safetensors model, or a GGUF for "
                                  "llama.cpp and Ollama"),
                       ("report", "(re)build report.md and report.html")]:
        p = commands.add_parser(name, help=text)
        p.add_argument("run_dir")
        _add_set(p)
        if name == "eval":
            p.add_argument("--no-base", action="store_true", help="skip the base model")
            _add_processes(p)
        if name == "compare":
            p.add_argument("--against", metavar="PREVIOUS_RUN",
                           help="compare with a previous run's model instead of the base, on this run's test split")
        if name == "export":
            p.add_argument("--format", choices=get_args(ExportFormat), default="hf",
                           help="; ".join(f"{key}: {text}" for key, text in EXPORT_FORMATS.items()).replace("`", "")
                           + " (default: hf)")
            p.add_argument("--quant", choices=get_args(GgufQuant),
                           help=f"tensor type of the GGUF (default: {DEFAULT_GGUF_QUANT}); --format gguf only")

    p = commands.add_parser("chat", help="interactive chat with the tuned model (streams tokens)")
    p.add_argument("run_dir")
    p.add_argument("--system", help="system prompt (default: the run's data.system_prompt)")
    p.add_argument("--max-new-tokens", type=int, default=256)
    _add_set(p)

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
    _add_set(p, "a threshold of the monitor: section", "monitor.max_error_rate=0.1")

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

    p = commands.add_parser("generate", help="answer one prompt with the tuned model")
    p.add_argument("run_dir")
    p.add_argument("--prompt", required=True)
    p.add_argument("--system", help="system prompt (default: the run's data.system_prompt)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    _add_set(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    _configure_logging(args.verbose)
    subcommand = getattr(args, f"{args.command}_command", None)
    command = f"{args.command} {subcommand}" if subcommand else args.command
    try:
        if getattr(args, "processes", 1) > 1:
            distributed.launch(_without_processes(argv), args.processes)  # each process runs this command
            return 0
        if getattr(args, "processes", 1) < 1:
            raise TunesmithError("--processes must be 1 or more")
        return HANDLERS[command](args)
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


def _init(args: argparse.Namespace) -> int:
    from tunesmith.data.starter import write_starter_config

    print(write_starter_config(args.data, args.test, args.out, args.overwrite).render())
    return 0


def _run(args: argparse.Namespace) -> int:
    from tunesmith.pipeline import run_pipeline

    config, run = _new_or_resumed_run(args)
    run_pipeline(config, run, resume=args.resume)
    if distributed.is_main():
        print(f"report: {run.report_html}")
        print(f"run folder: {run.root}")
    return 0


def _train(args: argparse.Namespace) -> int:
    from tunesmith.pipeline import run_pipeline

    config, run = _new_or_resumed_run(args)
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
    from tunesmith.data.clean import run_clean

    print(run_clean(args.input_path, args.output_path, args.config, args.drop, args.overrides, args.overwrite))
    return 0


def _config(args: argparse.Namespace) -> int:
    print(dump_config(load_config(args.config, args.overrides)), end="")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from tunesmith.evaluate import evaluate_run, format_comparison

    config, run = _existing_run(args)
    result = evaluate_run(config, run, include_base=False if args.no_base else None)
    if distributed.is_main():
        print(format_comparison(result))
    return 0


def _compare(args: argparse.Namespace) -> int:
    from tunesmith.evaluate import compare_run

    against = RunDir(args.against) if args.against else None
    if against is not None:
        against.config()  # fails clearly when it is not a run folder
    print(compare_run(*_existing_run(args), against=against))
    return 0


def _export(args: argparse.Namespace) -> int:
    from tunesmith.deploy import export_gguf, export_run
    from tunesmith.deploy.gguf import MODELFILE

    if args.format == "hf":
        if args.quant is not None:
            raise TunesmithError("--quant applies to --format gguf only", "drop --quant, or add --format gguf")
        for name, path in export_run(*_existing_run(args)).items():
            print(f"{name}: {path}")
        return 0
    path = export_gguf(*_existing_run(args), quant=args.quant or DEFAULT_GGUF_QUANT)
    print(f"gguf: {path}")
    print(f"modelfile: {path.parent / MODELFILE}")
    return 0


def _report(args: argparse.Namespace) -> int:
    from tunesmith.report import build_report

    for path in build_report(*_existing_run(args)).values():
        print(path)
    return 0


def _chat(args: argparse.Namespace) -> int:
    from tunesmith.deploy import chat_loop

    _existing_run(args)
    chat_loop(args.run_dir, max_new_tokens=args.max_new_tokens, system=args.system)
    return 0


def _generate(args: argparse.Namespace) -> int:
    from tunesmith.deploy import generate_text

    _existing_run(args)
    print(generate_text(args.run_dir, args.prompt, max_new_tokens=args.max_new_tokens, system=args.system))
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from tunesmith.tune import prepare_sweep, run_sweep, work
    from tunesmith.tune.sweep import STORAGE_VARIABLE

    storage = args.storage or os.environ.get(STORAGE_VARIABLE) or None
    if args.worker:
        work(prepare_sweep(args.config, args.overrides, resume=True, storage=storage, sweep_dir=args.sweep_dir))
        return 0
    summary = run_sweep(args.config, args.overrides, resume=args.resume, storage=storage, workers=args.workers,
                        sweep_dir=args.sweep_dir)
    print(f"best trial: {summary['best_trial']} ({summary['best_value']:.6g}); run folder: {summary['best_run']}")
    print(f"best config: {summary['best_config']}")
    print(f"report: {summary['report_html']}")
    return 0


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
    "init": _init,
    "run": _run, "train": _train, "data check": _data_check, "data clean": _data_clean, "config": _config,
    "eval": _eval, "compare": _compare, "export": _export, "report": _report, "chat": _chat, "generate": _generate,
    "serve": _serve, "sweep": _sweep, "monitor": _monitor, "feedback export": _feedback_export,
}


def _new_or_resumed_run(args: argparse.Namespace) -> tuple[RunConfig, RunDir]:
    """The config of `run`/`train` and its run folder: ``--run-dir`` (created, or resumed with ``--resume``),
    else a new folder under ``output.dir``, or with ``--resume`` the newest run of this config file. A resume
    runs with the run's own settings plus the resumable changes (`tunesmith.pipeline.resume_config`). In a job of
    several processes rank 0 decides (and creates the folder) and tells the others."""
    config = load_config(args.config, args.overrides)
    if distributed.world_size() == 1:
        return _decide_run(args, config)
    distributed.start(config.distributed.timeout_minutes)
    decided = _decide_run(args, config) if distributed.is_main() else None
    settings, folder = distributed.broadcast(
        (decided[0].model_dump(mode="json"), str(decided[1].root)) if decided else None)
    return validate_config(settings), RunDir(folder)


def _decide_run(args: argparse.Namespace, config: RunConfig) -> tuple[RunConfig, RunDir]:
    from tunesmith.models import check_method_available
    from tunesmith.pipeline import create_run, find_resumable_run, resume_config

    check_method_available(config.method)  # before a run folder is made for a run this machine cannot train
    run_dir = getattr(args, "run_dir", None)
    if run_dir:
        config = config.model_copy(update={"output": config.output.model_copy(
            update={"dir": str(Path(run_dir).parent), "name": Path(run_dir).name})})
    if not args.resume:
        return config, create_run(config, args.config)
    run = RunDir(run_dir) if run_dir else find_resumable_run(config, args.config)
    return resume_config(run, config), run


def _existing_run(args: argparse.Namespace) -> tuple[RunConfig, RunDir]:
    """The run folder a command names and its config. ``--set`` may change the command's own settings only
    (`tunesmith.config.changes.run_folder_config`); the saved config records them, so the folder keeps saying
    what was done."""
    run = RunDir(args.run_dir)
    config = run.config()  # fails clearly when this is not a run folder
    if args.overrides:
        config = run_folder_config(config, validate_config(apply_overrides(config.model_dump(mode="json"),
                                                                           args.overrides)))
        with run.lock():
            if distributed.is_main():
                save_config(config, run.config_path)
    return config, run


def _without_processes(argv: list[str]) -> list[str]:
    """The command line without ``--processes N`` (what each launched process runs)."""
    kept, skip = [], False
    for arg in argv:
        name = arg.split("=", 1)[0]
        spelled = len(name) > 3 and "--processes".startswith(name)  # argparse takes any unique prefix
        if skip:
            skip = False
        elif spelled and "=" not in arg:
            skip = True
        elif not spelled:
            kept.append(arg)
    return kept


def _configure_logging(verbose: bool) -> None:
    # In a job of several processes, rank 0 speaks for all; the others say only what goes wrong.
    level = logging.DEBUG if verbose else logging.INFO if distributed.is_main() else logging.ERROR
    logging.basicConfig(
        level=level, format="%(message)s",
        handlers=[RichHandler(show_path=False, show_time=False, markup=False)],
    )
    if not verbose:
        # Library chatter (deprecation notices, per-file loading bars) buries what the user needs to read.
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module="torch")
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        for name in ("datasets", "peft", "accelerate", "gguf"):
            logging.getLogger(name).setLevel(logging.ERROR)


if __name__ == "__main__":
    sys.exit(main())
