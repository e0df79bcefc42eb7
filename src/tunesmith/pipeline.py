"""The whole job in order: data check → train → evaluate (base vs tuned) → export → gate (with `gate:`) → report.

Every stage has one signature, ``stage(config, run, inputs) -> summary``: the run's config, its folder, and what
the stages of one run share, its `RunInputs` (the data splits and the `Task` they are scored on, read once, when
a stage first needs them). So the pipeline is a list of stages run in a loop, each timed the same way; it makes
one `RunInputs` per run and passes it to every stage. Export and report read only the run folder: they take the
inputs and leave them unread (`_from_the_folder`). A command on one stage of an existing run (`tunesmith eval`,
`compare`, ...) makes its own `RunInputs`; a run started part way (`start`: a sweep's best trial, trained as a
trial, is finished from `evaluate`) goes through the same list, so no stage is skipped.

In a job of several processes (`tunesmith.distributed`), training and evaluation run in every process (each
on its share); the data check, the export and the report only in rank 0, the others waiting for it.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import re
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

from tunesmith import distributed
from tunesmith.config import RunConfig, save_config
from tunesmith.config.changes import describe, fingerprint, resumed_config
from tunesmith.data import RunInputs, Splits, check_run_data
from tunesmith.errors import RunError
from tunesmith.evaluate import evaluate_run
from tunesmith.export import export_run
from tunesmith.gate import run_gate
from tunesmith.json_files import read_json, write_json
from tunesmith.models import check_method_available
from tunesmith.plan import run_summary
from tunesmith.report import build_report
from tunesmith.retrieval import rag_run_config
from tunesmith.run_dir import RunDir, origin_record, require_ours
from tunesmith.tracking import log_outputs, require_trackers
from tunesmith.train import train
from tunesmith.train.checkpoint import latest_checkpoint
from tunesmith.train.resume import check_resume

log = logging.getLogger("tunesmith")

Stage = Callable[[RunConfig, RunDir, RunInputs], dict]


EVERY_PROCESS = {"train", "evaluate"}
"""Stages that every process of a job runs (on its share of the work); rank 0 alone runs the others."""


def stages(resume: bool = False, gate: bool = False) -> list[tuple[str, Stage]]:
    """The stages of `tunesmith run`, in order (``resume`` continues training from the last checkpoint; ``gate``
    judges the run after its export, when the config has a `gate:` section, so the report shows the verdict)."""
    return [
        ("data", check_run_data),
        ("train", partial(_planned_training, resume=resume)),
        ("evaluate", evaluate_run),
        ("export", _from_the_folder(export_run)),
        *([("gate", run_gate)] if gate else []),
        ("report", _from_the_folder(build_report)),
    ]


def _planned_training(config: RunConfig, run: RunDir, inputs: RunInputs, resume: bool = False) -> dict:
    """Training, after the plan's one-line summary (cheap: no model, the tokenized cache training then reads)."""
    if distributed.is_main():
        log.info(run_summary(config, run, inputs, resume))
    return train(config, run, inputs, resume=resume)


def _from_the_folder(stage: Callable[[RunConfig, RunDir], dict]) -> Stage:
    """A stage that reads only the run folder (what earlier stages wrote there), not the run's data."""
    @functools.wraps(stage)
    def reading_the_folder(config: RunConfig, run: RunDir, inputs: RunInputs) -> dict:
        return stage(config, run)

    return reading_the_folder


def run_pipeline(config: RunConfig, run: RunDir, resume: bool = False, start: str | None = None,
                 until: str | None = None, splits: Splits | None = None) -> RunDir:
    """Everything `tunesmith run` does, in order, in one run folder: from the stage ``start`` (the first when None;
    ``"evaluate"`` finishes a run trained elsewhere) up to and including the stage ``until`` (e.g. ``"train"`` for
    `tunesmith train`). A `rag` section that changes rows (`tunesmith.retrieval.rows`) has them written into the
    run folder first, and every stage reads them. ``timings.json`` holds the seconds of each stage done so far,
    rewritten after every stage (so the report, last, shows the others), and the whole run's ``total`` when it ran
    from the first stage; started later, it keeps the seconds it held of the stages before ``start``. ``splits``
    are the splits of ``config``'s data when the caller holds them already (a sweep, a RAG comparison): the stages
    use them instead of reading the files again."""
    started = time.perf_counter()
    selected = _selected_stages(stages(resume, gate=config.gate is not None), start, until)
    seconds: dict[str, float] = {} if start is None else _earlier_timings(run, [name for name, _ in selected])
    check_method_available(config.method)  # before the data stage tokenizes anything
    require_trackers(config)  # a tracker's missing package, before anything is spent
    with run.lock():  # one writer for the whole run, not only stage by stage
        if distributed.is_main():
            run.failure.unlink(missing_ok=True)
        # With `rag` rows, the run reads them from its folder (rag/*.jsonl) rather than the caller's splits.
        run_config = rag_run_config(config, run, splits)
        inputs = RunInputs(run_config, splits if run_config is config else None)  # shared by every stage
        config = run_config
        for name, stage in selected:
            stage_started = time.perf_counter()
            if name in EVERY_PROCESS or distributed.is_main():
                with _recording_failure(run, name):
                    stage(config, run, inputs)
            distributed.barrier()  # the next stage reads what this one wrote
            seconds[name] = round(time.perf_counter() - stage_started, 1)
            if distributed.is_main():
                write_json(run.timings, _with_total(seconds, started, start))
        if distributed.is_main() and "report" in [name for name, _ in selected]:
            log_outputs(run, config)  # the report and adapter to train.report_to's trackers; their runs end
    log.info("stage times (s): %s", _with_total(seconds, started, start))
    return run


def _selected_stages(every: list[tuple[str, Stage]], start: str | None, until: str | None) -> list[tuple[str, Stage]]:
    """The stages from ``start`` through ``until`` (the first and the last when None)."""
    names = [name for name, _ in every]
    for given in (start, until):
        if given is not None and given not in names:
            raise ValueError(f"no pipeline stage is named {given!r} (the stages: {', '.join(names)})")
    first = names.index(start) if start is not None else 0
    last = names.index(until) if until is not None else len(names) - 1
    return every[first : last + 1]


def _earlier_timings(run: RunDir, running: list[str]) -> dict[str, float]:
    """The seconds timings.json holds of the stages that this pipeline does not run again."""
    try:
        recorded = read_json(run.timings) or {}
    except RunError:
        return {}  # a damaged file: only this pipeline's stages are timed
    return {name: value for name, value in recorded.items() if name not in running and name != "total"}


def _with_total(seconds: dict[str, float], started: float, start: str | None) -> dict[str, float]:
    """The stage seconds, and the whole run's when this pipeline ran it from the first stage."""
    return seconds if start is not None else {**seconds, "total": round(time.perf_counter() - started, 1)}


@contextlib.contextmanager
def _recording_failure(run: RunDir, stage: str) -> Iterator[None]:
    """Leave ``failure.json`` when ``stage`` raises, so that a failed run can be told from one still running or
    stopped on purpose (`tunesmith ui` shows it); Ctrl-C is a stop, not a failure."""
    try:
        yield
    except Exception as error:
        write_json(run.failure, {"stage": stage, "error": str(error) or type(error).__name__,
                                 "type": type(error).__name__, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        raise


UNSTARTED_FILES = {"config.yaml", "origin.json", "data_summary.json", "timings.json", "failure.json"}
"""What a run that stopped before training leaves: its folder may be reused for the rerun."""


def create_run(config: RunConfig, config_path: str | Path | None = None) -> RunDir:
    """A new run folder under `output.dir`, holding the resolved config and its origin (see `find_resumable_run`).

    Without `output.name` the folder is `<config stem>-<timestamp>`, with `-2`, `-3`... when runs start in the
    same second. A named folder that exists is reused only when it holds nothing but what a run that stopped
    before training leaves; otherwise the error says how to go on.
    """
    base = Path(config.output.dir)
    if base.exists() and not base.is_dir():
        raise RunError(f"output.dir {base} is a file, not a folder", "set output.dir to a folder")
    base.mkdir(parents=True, exist_ok=True)
    if config.output.name:
        run = RunDir(base / config.output.name)
        if run.root.exists() and not run.root.is_dir():
            raise RunError(f"{run.root} exists and is not a folder", "pick another output.name (or --run-dir)")
        run.root.mkdir(exist_ok=True)
        with run.lock():
            left = {path.name for path in run.root.iterdir()} - {run.lock_file.name}
            if left - UNSTARTED_FILES:  # metrics, checkpoints or anything not ours: a run or a user's folder
                raise RunError(f"run folder {run.root} already exists",
                               "continue it with --resume, pick another output.name, or remove the folder")
            if left - {run.origin.name}:  # the lock marks a new folder with origin.json alone
                log.info("reusing %s: the run there stopped before training", run.root)
            _record_origin(run, config, config_path)
        return run
    stem = re.sub(r"[^\w.-]+", "-", Path(config_path).stem) if config_path else "run"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in itertools.count(1):
        run = RunDir(base / (f"{stem}-{stamp}" if attempt == 1 else f"{stem}-{stamp}-{attempt}"))
        try:
            run.root.mkdir()  # exclusive: two runs started in the same second get different folders
            break
        except FileExistsError:
            continue
    _record_origin(run, config, config_path)
    return run


def _record_origin(run: RunDir, config: RunConfig, config_path: str | Path | None) -> None:
    # The marker first: a folder holding config.yaml alone would not read as a run folder tunesmith made.
    write_json(run.origin, origin_record("run", config_path=str(Path(config_path).resolve()) if config_path else None,
                                         fingerprint=fingerprint(config)))
    save_config(config, run.config_path)


def find_resumable_run(config: RunConfig, config_path: str | Path) -> RunDir:
    """The run `--resume CONFIG` continues: `output.name` when set, else the newest run folder under
    `output.dir` made from this config file (its resolved path), preferring one whose settings match (the same
    `fingerprint`), that holds a checkpoint."""
    base = Path(config.output.dir)
    if config.output.name:
        folders = [base / config.output.name]
    else:
        resolved = str(Path(config_path).resolve())
        folders = [folder for folder in (base.iterdir() if base.is_dir() else []) if folder.is_dir()
                   and (_origin_of(folder) or {}).get("config_path") == resolved]
    runs = [RunDir(folder) for folder in folders if latest_checkpoint(RunDir(folder).checkpoints) is not None]
    if not runs:
        raise RunError(f"nothing to resume: no run of {config_path} under {base} has a checkpoint",
                       "start it without --resume")
    same = [run for run in runs if (_origin_of(run.root) or {}).get("fingerprint") == fingerprint(config)]
    return max(same or runs, key=lambda run: run.checkpoints.stat().st_mtime)


def _origin_of(folder: Path) -> dict | None:
    try:
        return read_json(folder / "origin.json")
    except RunError:
        return None  # a damaged origin matches nothing


def resume_config(run: RunDir, requested: RunConfig) -> RunConfig:
    """The config a resume of ``run`` continues with: ``requested`` when it differs from the run's own only in
    resumable settings (applied, and written to the run's config.yaml), else a `ConfigError` naming each change
    (see `tunesmith.config.changes`); a `RunError` when its global batch or data files differ from the checkpoints'
    (`tunesmith.train.resume.check_resume`). Nothing is written before every check passed."""
    if not run.root.is_dir():
        raise RunError(f"nothing to resume: {run.root} does not exist", "start the run without --resume")
    require_ours(run.root, "run")  # a user's config.yaml in a folder is no run's settings
    saved = run.config()
    requested = requested.model_copy(update={"output": saved.output})  # the folder is the run's, wherever named
    config, applied = resumed_config(saved, requested, str(run.root))
    check_resume(run, config)  # the global batch and the data files too, before anything is written
    if applied:
        log.info("resume applies: %s", describe(applied))
        with run.lock():
            save_config(config, run.config_path)
    return config
