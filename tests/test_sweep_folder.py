"""A sweep folder's layout, and its trials' states from the sweep's own study, with nothing read (or created) where
there is none."""

from __future__ import annotations

import json

import optuna
from optuna.trial import TrialState, create_trial

from tunesmith.sweep_folder import (
    STATE_NAMES,
    SWEEP_FILE,
    TRIALS_FOLDER,
    is_sweep_folder,
    sqlite_url,
    state_name,
    trial_state,
)


def write_sweep(folder, states) -> list:
    """A sweep folder whose study holds one trial in each of ``states``; the trials' run folders."""
    folder.mkdir()
    (folder / SWEEP_FILE).write_text(json.dumps({"storage": sqlite_url(folder), "study": "sms"}))
    study = optuna.create_study(storage=sqlite_url(folder), study_name="sms")
    trials = []
    for number, state in enumerate(states):
        trials.append(folder / TRIALS_FOLDER / f"trial-{number:04d}")
        trials[-1].mkdir(parents=True)
        study.add_trial(create_trial(state=state, value=1.0 if state == TrialState.COMPLETE else None,
                                     user_attrs={"run_dir": str(trials[-1])}))
    return trials


def test_trial_states_come_from_the_study(tmp_path):
    trials = write_sweep(tmp_path / "sms-sweep-1", [TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL])
    assert is_sweep_folder(tmp_path / "sms-sweep-1") and not is_sweep_folder(tmp_path)
    assert [trial_state(trial) for trial in trials] == ["done", "pruned", "failed"]
    run = tmp_path / "spam-done"
    run.mkdir()
    assert trial_state(run) is None  # not a trial


def test_no_study_is_contacted_or_created_elsewhere(tmp_path):
    trial = tmp_path / "sweep" / "trials" / "trial-0000"
    trial.mkdir(parents=True)
    record = tmp_path / "sweep" / "sweep.json"
    record.write_text(json.dumps({"storage": "postgresql://user:***@db.example/optuna", "study": "s"}))
    assert trial_state(trial) is None
    record.write_text(json.dumps({"storage": f"sqlite:///{tmp_path / 'sweep' / 'sweep.db'}", "study": "s"}))
    assert trial_state(trial) is None and not (tmp_path / "sweep" / "sweep.db").exists()
    record.write_text("{damaged")
    assert trial_state(trial) is None


def test_every_optuna_state_has_a_word():
    assert {state.name for state in TrialState} == set(STATE_NAMES)
    assert state_name(TrialState.WAITING) == "queued"
