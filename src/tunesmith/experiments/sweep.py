"""`tunesmith sweep CONFIG`: search the settings of ``sweep.params`` with Optuna, choosing by the validation split
only; then finish the best trial through the pipeline's stages after training (evaluate on the test split, once;
export; report), and write ``best.yaml``.

The sweep folder (``<output.dir>/<config stem>-sweep-<timestamp>/``) holds ``sweep.json`` (what this sweep is:
its config file, study and storage), ``sweep.db`` (the Optuna study, unless ``--storage`` names a database),
``trials/trial-NNNN/`` (each trial a normal run folder: config, metrics, checkpoints; they share the tokenization
cache), ``best.yaml`` and ``sweep_report.md``/``.html``. ``--resume`` continues the newest sweep of the config
file; ``--workers N`` runs N local worker processes against the same study.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import optuna
from rich.console import Console
from rich.live import Live
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from tunesmith.atomic import write_atomic
from tunesmith.config import dump_config, load_config, validate_config
from tunesmith.config.schema import RunConfig
from tunesmith.config.search_space import Param, check_metric, metric_direction, parse_space
from tunesmith.data.example import Splits
from tunesmith.data.run_inputs import RunInputs
from tunesmith.document import format_duration
from tunesmith.errors import ConfigError, RunError, TunesmithError
from tunesmith.experiments.study import (
    SpaceUsedUp,
    counts,
    draw_untried,
    every,
    heartbeat,
    mark_owner,
    one_worker_at_a_time,
    open_study,
    recover_dead_trials,
)
from tunesmith.experiments.sweep_report import best_settings, setting_text, write_sweep_report
from tunesmith.experiments.trial import metric_key, run_trial
from tunesmith.json_files import read_json, write_json
from tunesmith.pipeline import run_pipeline
from tunesmith.retrieval import uses_rows
from tunesmith.run_dir import RunDir, claim_folder
from tunesmith.sweep_folder import BEST_CONFIG, FINISH_LOCK, SWEEP_FILE, sqlite_url, state_name

log = logging.getLogger("tunesmith")
STORAGE_VARIABLE = "TUNESMITH_SWEEP_STORAGE"
"""Read by `--storage` when it is not given (how `--workers` hands a database URL to its processes)."""
MAX_FAILURES_IN_A_ROW = 3
"""Trials that fail (an error, not pruning) in a row before a worker gives up: the same error again and again is a
problem of the config, not of one trial's settings."""


@dataclass(frozen=True)
class Sweep:
    folder: Path
    config: RunConfig
    config_path: str
    overrides: tuple[str, ...]
    params: list[Param]
    url: str
    study_name: str
    direction: str
    started: float
    splits: Splits
    """The splits of the sweep's data settings, read once: the trials that leave `data` alone train on them."""

    @property
    def metric(self) -> str:
        return metric_key(self.config.sweep.metric)

    def study(self) -> optuna.Study:
        return open_study(self.url, self.study_name, self.config.sweep, self.direction)


def prepare_sweep(config_path: str, overrides: list[str], resume: bool = False, storage: str | None = None,
                  sweep_dir: str | None = None) -> Sweep:
    """Load and check the sweep (the search space and metric: config errors name their key before any trial),
    and find or create its folder."""
    config = load_config(config_path, overrides)
    if config.sweep is None:
        raise ConfigError("sweep", "the config has no sweep section", "add one, e.g. sweep: {trials: 8, params: "
                          "{train.learning_rate: {log_uniform: [1e-5, 1e-3]}}}")
    if uses_rows(config):  # trials train on `data` directly; rows with retrieved context would be left out unseen
        raise ConfigError("rag", "a sweep does not train on rag rows (train_with_context, answer_with_context, "
                          "sft_on_documents)", "sweep without them, then use the best config with them in a run")
    params = parse_space(config)
    inputs = RunInputs(config)
    check_metric(config.sweep.metric, inputs.task.name)  # the task decides which metrics exist
    folder = _sweep_folder(config, config_path, resume, sweep_dir)
    shown = check_storage(storage) if storage else None  # before anything is written
    record = read_json(folder / SWEEP_FILE)
    if record is None:
        # A database URL's password is not written down: a resume gives --storage again.
        shown = shown or sqlite_url(folder)
        record = {"config_path": str(Path(config_path).resolve()), "overrides": list(overrides),
                  "storage": shown, "study": Path(config_path).stem, "started": time.time()}
        claim_folder(folder, "sweep")  # a folder of the user's own files is refused before anything is written
        write_json(folder / SWEEP_FILE, record)
    if storage is None and "***" in record["storage"]:
        raise RunError(f"the sweep in {folder} keeps its study in {record['storage']}",
                       "give --storage with the database URL (and its password) again")
    return Sweep(folder=folder, config=config, config_path=str(Path(config_path).resolve()),
                 overrides=tuple(overrides), params=params, url=storage or record["storage"],
                 study_name=record["study"], direction=metric_direction(config.sweep.metric, config.sweep.direction),
                 started=record["started"], splits=inputs.splits)


def check_storage(url: str) -> str:
    """``url`` as the sweep records it (its password hidden), once the study storage it names has opened: a URL
    that does not is a one-line error before the sweep writes anything."""
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        raise ConfigError("--storage", "is not a database URL", "e.g. postgresql://user:password@host/db or "
                          "sqlite:////absolute/path/sweep.db") from None
    try:
        storage = optuna.storages.RDBStorage(url)
    except (SQLAlchemyError, ImportError, ValueError) as error:  # ImportError: the URL's driver is not installed
        cause = getattr(error, "orig", None) or error
        reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0]
        password = make_url(url).password
        if password:
            reason = reason.replace(str(password), "***")
        raise RunError(f"cannot open the sweep's study storage {shown}: {reason}",
                       "check the URL, that the database server is up, and that its driver is installed") from None
    storage.engine.dispose()
    return shown


def _sweep_folder(config: RunConfig, config_path: str, resume: bool, sweep_dir: str | None) -> Path:
    if sweep_dir:
        folder = Path(sweep_dir)
        if (folder / SWEEP_FILE).is_file() and not resume:
            raise RunError(f"{folder} already holds a sweep", "continue it with --resume, or give another folder")
        return folder
    parent = Path(config.output.dir)
    stem = Path(config_path).stem
    if resume:
        mine = [folder for folder in parent.glob(f"{stem}-sweep-*") if (folder / SWEEP_FILE).is_file()
                and (read_json(folder / SWEEP_FILE) or {}).get("config_path") == str(Path(config_path).resolve())]
        if not mine:
            raise RunError(f"no sweep of {config_path} under {parent} to resume", "start one without --resume")
        return max(mine, key=lambda folder: folder.stat().st_mtime)
    folder = parent / f"{stem}-sweep-{datetime.now():%Y%m%d-%H%M%S}"
    suffix = 2
    while folder.exists():
        folder = parent / f"{stem}-sweep-{datetime.now():%Y%m%d-%H%M%S}-{suffix}"
        suffix += 1
    return folder


# ---- workers ------------------------------------------------------------------------------------------------------


def work(sweep: Sweep) -> None:
    """One worker: start trials until the sweep has its trial count (or its time is up, or the search space has no
    untried setting left); see `tunesmith.experiments.study` for how workers share the count and the settings."""
    study = sweep.study()
    failures_in_a_row = 0
    timeout = sweep.config.sweep.timeout_minutes
    wanted = sweep.config.sweep.trials
    while True:
        with one_worker_at_a_time(sweep.folder):
            for number in recover_dead_trials(study):
                log.warning("trial %d was left unfinished by a worker that died: marked failed; its settings are "
                            "not tried again", number)
            done = counts(study)
            if done.finished + done.running >= wanted:
                return
            if timeout and time.time() - sweep.started > timeout * 60:
                log.info("sweep.timeout_minutes (%s) is up: no new trial", timeout)
                return
            if not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
                try:
                    study.enqueue_trial(draw_untried(study, sweep.config.sweep, sweep.params), skip_if_exists=False)
                except SpaceUsedUp as used_up:
                    log.warning("%s: the search ends with %d finished trials, not %d (sweep.trials)", used_up,
                                done.finished, wanted)
                    return
            trial = study.ask()
            mark_owner(trial)
        try:
            with heartbeat(study, trial):
                value = run_trial(trial, sweep.config, sweep.params, sweep.folder, sweep.config_path, sweep.splits)
        except optuna.TrialPruned as pruned:
            log.info("trial %d pruned: %s", trial.number, pruned)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            failures_in_a_row = 0
        except TunesmithError as error:
            trial.set_user_attr("error", str(error))
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            failures_in_a_row += 1
            log.error("trial %d failed: %s", trial.number, error)
            if failures_in_a_row >= MAX_FAILURES_IN_A_ROW:
                raise RunError(f"{failures_in_a_row} trials failed in a row; the last: {error}") from None
        except BaseException as error:  # a bug or Ctrl-C: the trial ends failed, not RUNNING for a resume to find
            trial.set_user_attr("error", f"stopped by {type(error).__name__}")
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        else:
            study.tell(trial, value)
            failures_in_a_row = 0


def run_workers(sweep: Sweep, workers: int) -> None:
    """``workers`` local processes on one study, each with its share of the cores; their logs go to
    ``worker-N.log`` in the sweep folder."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    command = [sys.executable, "-m", "tunesmith", "sweep", sweep.config_path, "--worker", "--sweep-dir",
               str(sweep.folder), "--set", f"train.threads={threads}",
               *(arg for override in sweep.overrides for arg in ("--set", override))]
    # The storage URL goes by the environment, not the command line, where any user could read its password.
    environment = {**os.environ, STORAGE_VARIABLE: sweep.url}
    processes = []
    for index in range(workers):
        with open(sweep.folder / f"worker-{index}.log", "a") as output:
            processes.append(subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=environment))
    failed = [index for index, process in enumerate(processes) if process.wait() != 0]
    if failed:
        raise RunError(f"worker {failed[0]} of the sweep ended with an error",
                       f"see {sweep.folder / f'worker-{failed[0]}.log'}; --resume continues the sweep")


# ---- the end of a sweep --------------------------------------------------------------------------------------------


def finish(sweep: Sweep) -> dict:
    """Run the pipeline's stages after training on the best trial (`run_pipeline` from ``evaluate``: the test split
    is used this once; then export and report), write ``best.yaml`` and the sweep report; return the sweep's
    summary. Several processes on one study finish one at a time, and only the first evaluates and exports a
    winner: the others find it recorded in sweep.json (``evaluated``) and say who did it."""
    study = sweep.study()
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise RunError("no trial of the sweep completed, so there is no best one",
                       "see the trials' errors in the sweep report or the log; widen the search or add trials")
    best = study.best_trial
    run = RunDir(best.user_attrs["run_dir"])
    config = run.config()
    with _finishing(sweep.folder):
        record = read_json(sweep.folder / SWEEP_FILE) or {}
        evaluated = record.get("evaluated") or {}
        finished_by = None
        if evaluated.get("trial") == best.number and run.eval_json.is_file():
            finished_by = f"pid {evaluated['pid']} on {evaluated['host']} at {evaluated['at']}"
            log.info("the best trial (%d) was evaluated on the test split and exported by %s: not again",
                     best.number, finished_by)
        else:
            log.info("best trial: %d (%s %.4g); evaluating it on the test split", best.number, sweep.metric,
                     best.value)
            run_pipeline(config, run, start="evaluate",
                         splits=sweep.splits if config.data == sweep.config.data else None)
            runnable = config.model_dump(mode="json")
            runnable["output"] = sweep.config.output.model_dump(mode="json") | {"name": None}
            write_atomic(sweep.folder / BEST_CONFIG,
                         _best_yaml_header(sweep, best) + dump_config(validate_config(runnable)))
            record["evaluated"] = {"trial": best.number, "pid": os.getpid(), "host": socket.gethostname(),
                                   "at": f"{datetime.now():%Y-%m-%d %H:%M:%S}"}
            write_json(sweep.folder / SWEEP_FILE, record)
        # The report again either way: this process may have added trials to the table.
        paths = write_sweep_report(sweep, study, best, read_json(run.eval_json))
    return {"best_trial": best.number, "best_value": best.value, "best_run": str(run.root),
            "best_config": str(sweep.folder / BEST_CONFIG), "finished_by": finished_by, **paths}


@contextmanager
def _finishing(folder: Path) -> Iterator[None]:
    """One process at a time finishes the sweep (an OS lock, released if the process dies)."""
    with open(folder / FINISH_LOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("another process is finishing the sweep; waiting for it")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _best_yaml_header(sweep: Sweep, best) -> str:
    settings = ", ".join(f"{key}={value}" for key, value in best_settings(sweep, best).items())
    return (f"# The best trial ({best.number}) of the sweep {sweep.folder.name}: {sweep.metric} {best.value:.6g} "
            f"on the\n# validation split, with {settings}. Run it with: tunesmith run {BEST_CONFIG}\n")


def run_sweep(config_path: str, overrides: list[str], resume: bool = False, storage: str | None = None,
              workers: int = 1, sweep_dir: str | None = None) -> dict:
    """The whole sweep: trials (here, or in ``workers`` processes), then `finish`."""
    if workers < 1:
        raise ConfigError("--workers", "must be 1 or more")
    sweep = prepare_sweep(config_path, overrides, resume, storage, sweep_dir)
    log.info("sweep folder: %s (study %s)", sweep.folder, sweep.study_name)
    with live_table(sweep):
        if workers == 1:
            work(sweep)
        else:
            run_workers(sweep, workers)
    summary = finish(sweep)
    done = counts(sweep.study())
    summary.update(trials=done.finished, pruned=done.pruned, failed=done.failed, folder=str(sweep.folder))
    return summary


# ---- the live table ------------------------------------------------------------------------------------------------




def trials_table(sweep: Sweep, study: optuna.Study) -> Table:
    table = Table(title=f"sweep {sweep.folder.name}: {sweep.metric} ({sweep.direction})")
    for column in ["trial", "state", *(param.label for param in sweep.params), sweep.metric, "time"]:
        table.add_column(column, justify="right" if column not in ("state",) else "left")
    for trial in study.get_trials(deepcopy=False):
        end = trial.datetime_complete or datetime.now()
        seconds = (end - trial.datetime_start).total_seconds() if trial.datetime_start else None
        value = trial.value if trial.value is not None else (
            trial.intermediate_values[max(trial.intermediate_values)] if trial.intermediate_values else None)
        table.add_row(str(trial.number), state_name(trial.state),
                      *(_short(trial.params.get(param.key)) for param in sweep.params),
                      _short(value), format_duration(seconds) if seconds is not None else "")
    return table


def _short(value) -> str:
    return "" if value is None else setting_text(value)


@contextmanager
def live_table(sweep: Sweep) -> Iterator[None]:
    """The trials table, redrawn every two seconds while the sweep runs (and once more at the end)."""
    study = sweep.study()
    with Live(trials_table(sweep, study), console=Console(stderr=True), refresh_per_second=1,
              transient=False) as live:
        def redraw() -> None:
            live.update(trials_table(sweep, study))

        try:
            with every(2.0, redraw, "tunesmith-sweep-table"):
                yield
        finally:
            redraw()
