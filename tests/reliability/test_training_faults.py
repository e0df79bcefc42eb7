"""A non-finite validation loss is never "best": it stops training with an error, or under
`train.on_nonfinite: skip` it is logged as skipped; validation rows with nothing to score stop training before
it starts."""

from __future__ import annotations

import json

import tunesmith.train.validation as validation
from tunesmith.run_dir import RunDir


def nan_validation_at(monkeypatch, calls: set[int]) -> None:
    real = validation.mean_supervised_loss
    count = iter(range(1, 100))

    def poisoned(*args, **kwargs):
        loss, tokens = real(*args, **kwargs)
        return (float("nan") if next(count) in calls else loss), tokens

    monkeypatch.setattr(validation, "mean_supervised_loss", poisoned)


def test_a_nan_validation_loss_stops_training_and_nothing_is_exported(project, cli, monkeypatch):
    nan_validation_at(monkeypatch, {1})
    code, _, error = cli("run", "config.yaml", "--set", "output.name=exp")
    assert code == 2 and error == (
        "tunesmith: error: non-finite validation loss (nan) at step 2 (lower train.learning_rate or set "
        "train.on_nonfinite: skip; the last good checkpoint and best weights are kept)")
    run = RunDir(project / "runs" / "exp")
    assert not run.best.exists() and not run.merged.exists() and not run.eval_json.exists()


def test_under_skip_a_nan_validation_is_logged_and_never_best(project, cli, monkeypatch):
    nan_validation_at(monkeypatch, {2})  # the validation at step 4, the last one
    code, _, error = cli("train", "config.yaml", "--set", "output.name=exp", "--set", "train.on_nonfinite=skip")
    assert code == 0, error
    run = RunDir(project / "runs" / "exp")
    summary = json.loads(run.train_summary.read_text())
    assert summary["best_step"] == 2 and summary["best_val_loss"] is not None
    validations = [json.loads(line) for line in run.metrics.read_text().splitlines() if "val_loss" in line]
    assert validations[1] == {"step": 4, "val_loss": None, "skipped": True, "reason": "non-finite validation loss"}
    assert "NaN" not in run.metrics.read_text() and "NaN" not in run.train_summary.read_text()


def test_validation_rows_with_nothing_to_score_stop_before_training(project, cli):
    code, _, error = cli("train", "config.yaml", "--set", "output.name=exp", "--set", "data.max_length=8")
    assert code == 2 and error.startswith("tunesmith: error: no training row has a supervised token left")
    long_prompts = (project / "data.jsonl").read_text().replace('"text": "', '"text": "' + "padding " * 200)
    (project / "val.jsonl").write_text("".join(long_prompts.splitlines(keepends=True)[:4]))
    code, _, error = cli("train", "config.yaml", "--set", "output.name=exp2", "--set", "data.path=null",
                         "--set", "data.train=data.jsonl", "--set", "data.validation=val.jsonl")
    assert code == 2 and error.startswith(
        "tunesmith: error: no validation row has a supervised token left after truncation to data.max_length 256")
    assert not (project / "runs" / "exp2" / "checkpoints").exists()
