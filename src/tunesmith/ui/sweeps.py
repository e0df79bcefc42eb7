"""What a sweep's Optuna study says about its trials: a trial the pruner stopped or one that failed leaves a run
folder like any stopped run, and only the study tells them apart.

Only a study in the sweep's own SQLite file is read (a database elsewhere is not contacted on every page load, and
sweep.json leaves its password out anyway); never created: a missing file means no study to read.
"""

from __future__ import annotations

import functools
from pathlib import Path

import optuna
from sqlalchemy.exc import SQLAlchemyError

from tunesmith.errors import RunError
from tunesmith.experiments.sweep import SWEEP_FILE
from tunesmith.experiments.sweep_report import STATE_NAMES
from tunesmith.experiments.trial import TRIALS_FOLDER
from tunesmith.json_files import read_json

SQLITE_PREFIX = "sqlite:///"


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
    return {Path(trial.user_attrs["run_dir"]).name: STATE_NAMES.get(trial.state.name, trial.state.name.lower())
            for trial in trials if "run_dir" in trial.user_attrs}
