"""The Optuna study of a sweep: storage, sampler, pruner, and the bookkeeping that keeps the trial count exact.

The study lives in a database (``sweep.db``, SQLite through Optuna's RDB storage, or a URL such as
``postgresql://...``), so a sweep can stop and resume, and several workers (local processes, or other machines
on the same URL) share it. Optuna samples and prunes; what is written here is only what Optuna leaves to the
caller of ``ask``/``tell``:

- How many trials to start: a worker asks for a trial only while finished (done or pruned) plus running trials
  are fewer than ``sweep.trials``, and local workers decide one at a time (a file lock), so they never start
  more trials than asked for between them.
- Trials whose worker died (SIGKILL, a crash, a lost machine) stay RUNNING in the database: a trial of this
  machine whose process is gone is marked failed at once and its parameters queued to run again; a trial of
  another machine is failed by Optuna's heartbeat once it stops beating for `GRACE_S` (and retried by its
  `RetryHeartbeatStaleTrialCallback`). A failed trial never counts as done.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import math
import os
import socket
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from tunesmith.config.search_space import Param
from tunesmith.config.sweep_section import SweepConfig
from tunesmith.run_dir import process_alive
from tunesmith.sweep_folder import LOCK_FILE

HEARTBEAT_S = 30
GRACE_S = 120
RETRIES = 2
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

# Optuna warns when a storage with a heartbeat serves trials outside `Study.optimize`; `heartbeat` below is what
# `optimize` would do, so the warning says nothing here.
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def open_study(url: str, name: str, sweep: SweepConfig, params: list[Param], direction: str) -> optuna.Study:
    """The study ``name`` in ``url``, created on first use (the same study for every worker). Its storage is
    ``study.storage`` here (Optuna keeps it private), for the trial bookkeeping below."""
    storage = optuna.storages.RDBStorage(
        url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
        heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=RETRIES),
        # SQLite serializes writers; several local workers wait for the lock rather than fail.
        engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None,
    )
    study = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True,
                                sampler=sampler_for(sweep, params), pruner=pruner_for(sweep))
    study.storage = storage
    return study


class _GridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler, except that it does not end the study when the grid is used up: it would call
    `Study.stop`, which works only inside `Study.optimize`, and tunesmith's workers ask and tell (the sweep ends by
    its trial count, capped at the grid's size: `grid_size`)."""

    def after_trial(self, study, trial, state, values) -> None:
        pass


def grid_size(params: list[Param]) -> int:
    return math.prod(len(param.grid()) for param in params)


def sampler_for(sweep: SweepConfig, params: list[Param]) -> optuna.samplers.BaseSampler:
    if sweep.sampler == "grid":
        return _GridSampler({param.key: param.grid() for param in params}, seed=sweep.seed)
    if sweep.sampler == "random":
        return optuna.samplers.RandomSampler(seed=sweep.seed)
    return optuna.samplers.TPESampler(seed=sweep.seed)


def pruner_for(sweep: SweepConfig) -> optuna.pruners.BasePruner:
    if sweep.pruner == "median":
        # Two finished trials before any is judged: one is no median.
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if sweep.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def suggest(trial: optuna.Trial, param: Param):
    """The trial's value of ``param`` (Optuna's sampler chooses it)."""
    if param.kind in ("choices", "multiple_of_r"):
        return trial.suggest_categorical(param.key, list(param.choices))
    if param.kind == "int":
        return trial.suggest_int(param.key, int(param.low), int(param.high), step=int(param.step or 1), log=param.log)
    return trial.suggest_float(param.key, float(param.low), float(param.high), log=param.log)


@dataclass(frozen=True)
class Counts:
    finished: int
    running: int
    failed: int
    pruned: int


def counts(study: optuna.Study) -> Counts:
    states = [trial.state for trial in study.get_trials(deepcopy=False)]
    return Counts(finished=sum(state in FINISHED for state in states),
                  running=states.count(TrialState.RUNNING), failed=states.count(TrialState.FAIL),
                  pruned=states.count(TrialState.PRUNED))


@contextlib.contextmanager
def one_worker_at_a_time(folder: Path) -> Iterator[None]:
    """Local workers take turns deciding whether to start a trial (an OS lock, released if the process dies)."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def mark_owner(trial: optuna.Trial) -> None:
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())


def recover_dead_trials(study: optuna.Study) -> list[int]:
    """Fail this machine's RUNNING trials whose process is gone, queue their parameters again; and let Optuna
    fail other machines' trials whose heartbeat stopped. Returns the numbers of the trials failed here."""
    optuna.storages.fail_stale_trials(study)
    failed = []
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("host") != host or _alive(trial.user_attrs.get("pid")):
            continue
        # A FrozenTrial's storage id is `_trial_id` (Optuna's own callbacks use it the same way).
        study.storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
        failed.append(trial.number)
    return failed


def _alive(pid) -> bool:
    if not isinstance(pid, int):
        return True  # not ours to judge: the heartbeat will
    return process_alive(pid)


@contextlib.contextmanager
def every(seconds: float, action: Callable[[], None], name: str) -> Iterator[None]:
    """Run ``action`` every ``seconds`` on a background thread while the block runs."""
    stop = threading.Event()

    def repeat() -> None:
        while not stop.wait(seconds):
            action()

    thread = threading.Thread(target=repeat, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial) -> Iterator[None]:
    """Beat for ``trial`` while it runs, so that workers elsewhere can tell a live trial from a dead one (what
    `Study.optimize` does for its trials; workers that ask and tell do it here)."""
    beat = functools.partial(study.storage.record_heartbeat, trial._trial_id)
    beat()
    with every(HEARTBEAT_S, beat, "tunesmith-heartbeat"):
        yield
