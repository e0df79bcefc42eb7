"""The layout of a sweep folder, and what its Optuna study says about its trials (read only).

A sweep folder (``<output.dir>/<config stem>-sweep-<timestamp>/``) holds ``sweep.json`` (what the sweep is: its
config file, study and storage, and once evaluated, which trial won and which process evaluated it), ``sweep.db``
(the Optuna study in SQLite, unless the sweep names a database), ``sweep.lock`` (local workers take turns on it),
``finish.lock`` (processes take turns evaluating the winner on it), ``trials/trial-NNNN/`` (each trial a run
folder) and, once the search is over, ``best.yaml`` and the sweep report. `tunesmith.experiments` writes it; the
web UI reads it through this module, without the training stack.

A trial the pruner stopped or one that failed leaves a run folder like any stopped run: only the study tells them
apart (`trial_state`). Only a study in the sweep's own SQLite file is read (a database elsewhere is not contacted
on every page load, and sweep.json leaves its password out anyway); never created: a missing file means no study
to read.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

from tunesmith.errors import RunError
from tunesmith.json_files import read_json

SWEEP_FILE = "sweep.json"
STUDY_FILE = "sweep.db"
LOCK_FILE = "sweep.lock"
FINISH_LOCK = "finish.lock"
TRIALS_FOLDER = "trials"
BEST_CONFIG = "best.yaml"
SQLITE_PREFIX = "sqlite:///"
STATE_NAMES = {"COMPLETE": "done", "PRUNED": "pruned", "FAIL": "failed", "RUNNING": "running", "WAITING": "queued"}
"""What the user reads for each of Optuna's trial states."""

if TYPE_CHECKING:
    from optuna.trial import TrialState


def sqlite_url(folder: Path) -> str:
    """The storage URL of the study in the sweep folder's own SQLite file."""
    return f"{SQLITE_PREFIX}{(folder / STUDY_FILE).resolve()}"


def state_name(state: TrialState) -> str:
    return STATE_NAMES.get(state.name, state.name.lower())


def is_sweep_folder(folder: Path) -> bool:
    return (folder / SWEEP_FILE).is_file() and (folder / TRIALS_FOLDER).is_dir()


def trial_state(run_root: Path) -> str | None:
    """The sweep's word for the state of the trial in ``run_root`` (done, pruned, failed, running, queued), or None
    when the folder is no trial of a sweep whose study can be read here."""
    sweep_folder = run_root.parent.parent
    if run_root.parent.name != TRIALS_FOLDER or not (sweep_folder / SWEEP_FILE).is_file():
        return None
    try:
        record = read_json(sweep_folder / SWEEP_FILE) or {}
    except RunError:
        return None
    url, study = record.get("storage"), record.get("study")
    if not (isinstance(url, str) and url.startswith(SQLITE_PREFIX) and study):
        return None
    database = Path(url.removeprefix(SQLITE_PREFIX))
    if not database.is_file():
        return None
    # Keyed on the database's (and its write-ahead log's) modification times: read again only after a change.
    changed = tuple(path.stat().st_mtime_ns for path in (database, Path(f"{database}-wal")) if path.is_file())
    return _states(url, study, changed).get(run_root.name)


@functools.lru_cache(maxsize=16)
def _states(url: str, study: str, changed: tuple[int, ...]) -> dict[str, str]:
    # Optuna (the sweep extra) is imported only when a sweep's study is read: the core imports this module too.
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    try:
        storage = optuna.storages.RDBStorage(url)
    except SQLAlchemyError:
        return {}
    try:
        trials = optuna.load_study(study_name=study, storage=storage).get_trials(deepcopy=False)
    except (KeyError, SQLAlchemyError):  # Optuna's KeyError: no study of that name
        return {}
    finally:
        storage.engine.dispose()
    return {Path(trial.user_attrs["run_dir"]).name: state_name(trial.state)
            for trial in trials if "run_dir" in trial.user_attrs}
