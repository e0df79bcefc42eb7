"""The Optuna study of a sweep: storage, sampler, pruner, and the bookkeeping that keeps the trial count exact.

The study lives in a database (``sweep.db``, SQLite through Optuna's RDB storage, or a URL such as
``postgresql://...``), so a sweep can stop and resume, and several workers (local processes, or other machines
on the same URL) share it. Optuna samples and prunes; what is written here is only what Optuna leaves to the
caller of ``ask``/``tell``:

- How many trials to start: a worker asks for a trial only while finished (done or pruned) plus running trials
  are fewer than ``sweep.trials``, and local workers decide one at a time (a file lock), so they never start
  more trials than asked for between them.
- Which settings to try: a setting tried once (done, pruned, failed, running, or left by a worker that died) is
  never drawn again: `draw_untried` samples on a copy of the study's history with a seed of its own for every
  draw (`draw_seed`: every worker and every resume used to restart the sampler from ``sweep.seed`` and draw the
  same settings again), asks again when the draw was tried already, and says when the space is used up. The
  drawn settings are queued on the study and the next `ask` takes them, under the local workers' lock.
- Trials whose worker died (SIGKILL, a crash, a lost machine) stay RUNNING in the database: a trial of this
  machine whose process is gone is marked failed at once; a trial of another machine is failed by Optuna's
  heartbeat once it stops beating for `GRACE_S`. Neither is run again with the same settings (they may be what
  killed it: the kernel's out-of-memory killer sends SIGKILL too). A failed trial never counts as done.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import random
import socket
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import optuna
from optuna.trial import TrialState

from tunesmith.config.search_space import MAX_GRID_POINTS, Param, every_setting, space_size
from tunesmith.config.sweep_section import SweepConfig
from tunesmith.run_dir import process_alive
from tunesmith.sweep_folder import LOCK_FILE

HEARTBEAT_S = 30
GRACE_S = 120
MAX_DRAWS = 10
"""Draws of the sampler in a row that may land on tried settings before the search counts the space as used up
(only a finite space nearly tried through does that; it is then searched point by point)."""
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)

# Optuna warns when a storage with a heartbeat serves trials outside `Study.optimize`; `heartbeat` below is what
# `optimize` would do, so the warning says nothing here.
warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def open_study(url: str, name: str, sweep: SweepConfig, direction: str) -> optuna.Study:
    """The study ``name`` in ``url``, created on first use (the same study for every worker). Its storage is
    ``study.storage`` here (Optuna keeps it private), for the trial bookkeeping below. Its own sampler picks
    nothing: every trial's settings are drawn by `draw_untried` and queued before it is asked for."""
    storage = optuna.storages.RDBStorage(
        url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
        # SQLite serializes writers; several local workers wait for the lock rather than fail.
        engine_kwargs={"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None,
    )
    study = optuna.create_study(storage=storage, study_name=name, direction=direction, load_if_exists=True,
                                sampler=optuna.samplers.RandomSampler(seed=sweep.seed), pruner=pruner_for(sweep))
    study.storage = storage
    return study


def sampler_for(sampler: str, seed: int) -> optuna.samplers.BaseSampler:
    """The sampler of one draw (a grid is walked by `draw_untried` itself, without Optuna's `GridSampler`, which
    lists every combination and ends the study when it has visited them)."""
    if sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.RandomSampler(seed=seed)


def draw_seed(seed: int, trials: int, attempt: int) -> int:
    """The seed of one draw: from the sweep's seed, how many trials the study holds and the attempt, so that each
    draw has its own and a sweep is still reproducible from ``sweep.seed``."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{trials}/{attempt}".encode()).digest()[:4], "big")


def distribution(param: Param) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution `suggest` samples ``param`` from."""
    if param.kind in ("choices", "multiple_of_r"):
        return optuna.distributions.CategoricalDistribution(list(param.choices))
    if param.kind == "int":
        return optuna.distributions.IntDistribution(int(param.low), int(param.high), log=param.log,
                                                    step=int(param.step or 1))
    return optuna.distributions.FloatDistribution(float(param.low), float(param.high), log=param.log)


def setting_key(params: list[Param], values: dict) -> str:
    """One setting as a comparable key (choices may be lists, which do not hash)."""
    return json.dumps([values.get(param.key) for param in params], sort_keys=True)


def trial_values(trial: optuna.trial.FrozenTrial) -> dict:
    """The settings of a trial: sampled, or, while it waits in the queue, the ones queued for it."""
    return trial.params or trial.system_attrs.get("fixed_params", {})


class SpaceUsedUp(Exception):
    """No untried setting is left to draw (the message says why); the search ends there."""


def draw_untried(study: optuna.Study, sweep: SweepConfig, params: list[Param]) -> dict:
    """Settings no trial of ``study`` has had, drawn by the sweep's sampler from the study's history; `SpaceUsedUp`
    when none is left."""
    trials = study.get_trials(deepcopy=False)
    tried = {setting_key(params, trial_values(trial)) for trial in trials}
    size = space_size(params)
    untried = None
    if size is not None and size <= MAX_GRID_POINTS:
        untried = [setting for setting in every_setting(params)
                   if setting_key(params, dict(zip((p.key for p in params), setting))) not in tried]
        if not untried:
            failed = len({setting_key(params, trial.params) for trial in trials if trial.state == TrialState.FAIL})
            raise SpaceUsedUp(f"all {size} settings of the search space were tried"
                              + (f", {failed} of them by trials that failed" if failed else ""))
    if sweep.sampler == "grid":  # the grid in a random order, like Optuna's for several workers
        pick = random.Random(draw_seed(sweep.seed, len(trials), 0)).choice(untried)
        return dict(zip((param.key for param in params), pick))
    # Sampled on an in-memory copy of the history: the study itself gets only the accepted settings.
    history = [trial for trial in trials if trial.state in FINISHED
               and all(trial.distributions.get(p.key) == distribution(p) for p in params)]
    for attempt in range(MAX_DRAWS):
        with _quiet_optuna():  # Optuna announces every study it creates, in memory too
            scratch = optuna.create_study(direction=study.direction, sampler=sampler_for(
                sweep.sampler, draw_seed(sweep.seed, len(trials), attempt)))
        scratch.add_trials(history)
        trial = scratch.ask()
        values = {param.key: suggest(trial, param) for param in params}
        if setting_key(params, values) not in tried:
            return values
    if untried:  # a small space nearly tried through: the sampler keeps landing on tried points
        pick = random.Random(draw_seed(sweep.seed, len(trials), MAX_DRAWS)).choice(untried)
        return dict(zip((param.key for param in params), pick))
    raise SpaceUsedUp(f"the sampler drew only settings already tried, {MAX_DRAWS} times in a row")


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


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def recover_dead_trials(study: optuna.Study) -> list[int]:
    """Fail this machine's RUNNING trials whose process is gone, and let Optuna fail other machines' trials whose
    heartbeat stopped; their settings count as tried (see the module docstring). Returns the numbers of the trials
    failed here."""
    optuna.storages.fail_stale_trials(study)
    failed = []
    host = socket.gethostname()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("host") != host or _alive(trial.user_attrs.get("pid")):
            continue
        # A FrozenTrial's storage id is `_trial_id` (Optuna's own callbacks use it the same way).
        study.storage.set_trial_user_attr(trial._trial_id, "error", f"its worker (pid {trial.user_attrs['pid']}) "
                                          "died; its settings are not tried again")
        study.storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
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
