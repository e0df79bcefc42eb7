"""`tunesmith sweep` on the tiny model: trial counts, the test split kept for the winner, pruning, best.yaml
reproducing its trial, grid coverage (workers, a kill and a resume: tests/reliability/test_sweep_faults.py)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import optuna
import pytest
import yaml

from tunesmith.experiments import sweep as sweep_module
from tunesmith.experiments import trial as trial_module
from tunesmith.experiments.sweep import prepare_sweep, run_sweep, work
from tunesmith.json_files import read_json, read_jsonl
from tunesmith.run_dir import RunDir
from tunesmith.sweep_folder import trial_state


def finished_trials(summary_or_folder) -> list[optuna.trial.FrozenTrial]:
    folder = Path(summary_or_folder["folder"] if isinstance(summary_or_folder, dict) else summary_or_folder)
    record = read_json(folder / "sweep.json")
    study = optuna.load_study(study_name=record["study"], storage=record["storage"])
    return study.get_trials(deepcopy=False)


def test_a_sweep_runs_its_trials_and_only_the_best_sees_the_test_split(sweep_config, monkeypatch):
    seen_test_rows = []
    real_train = trial_module.train

    def spying_train(config, run, inputs, **kwargs):
        seen_test_rows.append(len(inputs.splits.test))
        return real_train(config, run, inputs, **kwargs)

    monkeypatch.setattr(trial_module, "train", spying_train)
    config = sweep_config({"train.learning_rate": {"log_uniform": [1e-3, 5e-2]}, "lora.r": [2, 4]}, pruner="none")
    summary = run_sweep(str(config), [])
    trials = finished_trials(summary)
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert seen_test_rows == [0, 0, 0]
    best = min(trials, key=lambda t: t.value)
    assert summary["best_trial"] == best.number
    for trial in trials:  # only the winner was evaluated (on test), exported and reported
        run = RunDir(trial.user_attrs["run_dir"])
        assert run.eval_json.is_file() == (trial.number == best.number)
        if trial.number == best.number:  # through the pipeline's stages after training, every one of them
            assert set(read_json(run.timings)) == {"evaluate", "export", "report"}
            assert run.merged.is_dir() and run.report_html.is_file()
        assert trial.value == read_json(run.train_summary)["best_val_loss"]
        assert trial.user_attrs["train_tokens"] == read_json(run.train_summary)["train_tokens"]
    folder = Path(summary["folder"])
    report = (folder / "sweep_report.md").read_text()
    for words in ("The best trial on the test split", "Parameter importances", "sweep_history.png", "Trials"):
        assert words in report
    assert (folder / "sweep_history.png").is_file() and (folder / "sweep_report.html").is_file()


def test_best_yaml_reproduces_the_best_trials_validation_loss(sweep_config, tmp_path):
    from tunesmith.cli import main

    summary = run_sweep(str(sweep_config({"train.learning_rate": [5e-3, 2e-2]}, trials=2, pruner="none")), [])
    best_yaml = Path(summary["best_config"])
    assert yaml.safe_load(best_yaml.read_text())["sweep"] is None
    assert main(["train", str(best_yaml), "--run-dir", str(tmp_path / "again")]) == 0
    assert read_json(tmp_path / "again" / "train_summary.json")["best_val_loss"] == summary["best_value"]


def test_the_median_pruner_stops_a_trial_that_falls_behind(sweep_config):
    config = sweep_config({"train.learning_rate": [3e-2, 1e-9]}, trials=3, pruner="median")
    sweep = prepare_sweep(str(config), [])
    study = sweep.study()
    for learning_rate in (3e-2, 3e-2, 1e-9):  # two good trials, then one that cannot learn
        study.enqueue_trial({"train.learning_rate": learning_rate}, skip_if_exists=False)
    work(sweep)
    trials = sweep.study().get_trials(deepcopy=False)
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE", "PRUNED"]
    assert list(trials[2].intermediate_values) == [1]  # stopped at its first validation, not after 3 steps
    assert read_json(Path(trials[2].user_attrs["run_dir"]) / "train_summary.json") is None
    assert 0 < trials[2].user_attrs["train_tokens"] < trials[0].user_attrs["train_tokens"]  # its cost is counted
    # What the web UI reads from the sweep folder (sweep.json's storage and study, the trials' folders) agrees.
    assert [trial_state(Path(t.user_attrs["run_dir"])) for t in trials] == ["done", "done", "pruned"]


def test_grid_sampling_covers_the_grid_exactly_once(sweep_config):
    config = sweep_config({"lora.r": [2, 4], "train.learning_rate": [5e-3, 2e-2]}, trials=4, sampler="grid",
                          pruner="none")
    sweep = prepare_sweep(str(config), [])
    work(sweep)
    seen = sorted((t.params["lora.r"], t.params["train.learning_rate"]) for t in sweep.study().get_trials())
    assert seen == [(2, 5e-3), (2, 2e-2), (4, 5e-3), (4, 2e-2)]


def test_a_config_without_a_sweep_section_is_an_error(sweep_config, error_of, tmp_path):
    config = sweep_config({"lora.r": [2]})
    raw = yaml.safe_load(config.read_text())
    del raw["sweep"]
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(raw))
    assert "config: sweep:" in error_of(lambda: run_sweep(str(plain), []))


def test_a_metric_the_task_lacks_is_refused_before_any_trial(sweep_config, error_of):
    config = sweep_config({"lora.r": [2]}, metric="bleu")
    assert "sweep.metric" in error_of(lambda: run_sweep(str(config), []))


def test_a_database_password_is_not_written_to_the_sweep_folder(sweep_config, tmp_path, error_of):
    config = sweep_config({"lora.r": [2]})
    folder = tmp_path / "remote-sweep"
    message = error_of(lambda: prepare_sweep(str(config), [], storage="postgresql://tuner:s3cret@db.invalid/studies",
                                             sweep_dir=str(folder)))
    assert "s3cret" not in message and "tuner:***@db.invalid" in message and not folder.exists()
    # A sweep on such a database (sweep.json records its URL without the password) needs --storage to resume.
    folder.mkdir()
    (folder / "sweep.json").write_text(json.dumps({
        "config_path": str(config.resolve()), "overrides": [], "storage": "postgresql://tuner:***@db.invalid/studies",
        "study": "sweep", "started": time.time()}))
    message = error_of(lambda: prepare_sweep(str(config), [], resume=True, sweep_dir=str(folder)))
    assert "--storage" in message


def test_an_unexpected_error_in_a_trial_leaves_it_failed_not_running(sweep_config, monkeypatch):
    """A bug (or Ctrl-C) inside a trial ends it FAIL: a RUNNING trial would wait for a resume to find it dead."""
    def broken(*args, **kwargs):
        raise ValueError("a bug")

    monkeypatch.setattr(sweep_module, "run_trial", broken)
    sweep = prepare_sweep(str(sweep_config({"lora.r": [2, 4]})), [])
    with pytest.raises(ValueError):
        work(sweep)
    (trial,) = sweep.study().get_trials()
    assert trial.state.name == "FAIL" and trial.user_attrs["error"] == "stopped by ValueError"


def test_a_task_metric_is_scored_on_validation_at_every_step_and_chooses_the_best(sweep_config):
    config = sweep_config({"train.learning_rate": [5e-3, 3e-2]}, trials=2, metric="accuracy", pruner="median")
    sweep = prepare_sweep(str(config), [])
    assert sweep.direction == "maximize"
    work(sweep)
    for trial in sweep.study().get_trials():
        run = RunDir(trial.user_attrs["run_dir"])
        assert run.config().train.val_metrics == ["accuracy"]
        best_step = read_json(run.train_summary)["best_step"]
        at_best = [line for line in read_jsonl(run.metrics) if line.get("step") == best_step and "val_accuracy" in line]
        assert trial.value == at_best[-1]["val_accuracy"]
        assert set(trial.intermediate_values) == {1, 2, 3}


def test_a_sweep_with_rag_rows_is_refused_before_any_trial(tmp_path, error_of):
    path = tmp_path / "sweep.yaml"
    path.write_text("data: {train: t.jsonl}\nsweep: {trials: 2, params: {train.learning_rate: [0.001, 0.01]}}\n"
                    "rag: {documents: d.jsonl, sft_on_documents: true}\n")
    assert "config: rag: a sweep does not train on rag rows" in error_of(lambda: prepare_sweep(str(path), []))
