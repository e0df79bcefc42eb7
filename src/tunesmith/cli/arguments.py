"""Arguments several commands share, and how a command finds or creates its run folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from tunesmith import distributed
from tunesmith.config import RunConfig, apply_overrides, load_config, save_config, validate_config
from tunesmith.config.changes import run_folder_config
from tunesmith.run_dir import RunDir


def positive(kind: type = float):
    """An argparse ``type`` for a size, a count or a time that must be above 0 (and finite): a negative body cap
    or a timeout of 0 would refuse or cancel every request."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {'number' if kind is float else 'whole number'}")
        if not 0 < value < float("inf"):
            raise argparse.ArgumentTypeError(f"{text} must be above 0")
        return value

    return parse


def add_processes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--processes", type=int, default=1, metavar="N",
                        help="run in N local processes (one per GPU; on CPU they share the cores), each on its share "
                             "of every batch; for several machines use `accelerate launch ... -m tunesmith` instead")


def add_allowed_host(parser: argparse.ArgumentParser) -> None:
    """The option of `serve` and `ui` (`tunesmith.web.AllowedHosts`), written here: the CLI loads no web code to
    parse arguments."""
    parser.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                        help="also answer requests whose Host header is NAME (besides localhost and the --host "
                             "address), e.g. a name behind a proxy; repeatable")


def add_set(parser: argparse.ArgumentParser, what: str = "a config value",
             example: str = "train.learning_rate=1e-4") -> None:
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help=f"override {what}, e.g. --set {example} (repeatable)",
    )


def new_or_resumed_run(args: argparse.Namespace) -> tuple[RunConfig, RunDir]:
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


def existing_run(args: argparse.Namespace) -> tuple[RunConfig, RunDir]:
    """The run folder a command names and its config. ``--set`` may change the command's own settings only
    (`tunesmith.config.changes.run_folder_config`); the saved config records them, so the folder keeps saying
    what was done. With `rag` rows the returned config reads them from the run folder (`rag_run_config`)."""
    run = RunDir(args.run_dir)
    config = run.config()  # fails clearly when this is not a run folder
    if args.overrides:
        config = run_folder_config(config, validate_config(apply_overrides(config.model_dump(mode="json"),
                                                                           args.overrides)))
        with run.lock():
            if distributed.is_main():
                save_config(config, run.config_path)
    from tunesmith.retrieval import rag_run_config

    return rag_run_config(config, run), run  # a run with `rag` rows reads them from its folder, as it was trained


def without_processes(argv: list[str]) -> list[str]:
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
