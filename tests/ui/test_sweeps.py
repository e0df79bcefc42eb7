"""Sweep trials' states from the sweep's own study, and nothing read (or created) where there is none."""

from __future__ import annotations

import json

from tunesmith.ui.sweeps import trial_state


def test_trial_states_come_from_the_study(runs_dir):
    trials = runs_dir / "sms-sweep-1" / "trials"
    assert [trial_state(trials / f"trial-{n:04d}") for n in range(3)] == ["done", "pruned", "failed"]
    assert trial_state(runs_dir / "spam-done") is None  # not a trial


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
