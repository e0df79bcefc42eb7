"""Validation during training: the task metrics of `train.val_metrics` recorded next to the loss (and at the best
step in the summary), training exactly the same with or without them, the `on_validation` hook, and the checks
made before the model loads."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from tunesmith.config import validate_config
from tunesmith.data.run_inputs import RunInputs
from tunesmith.errors import ConfigError
from tunesmith.run_dir import RunDir
from tunesmith.train import train


def config_of(model_dir, evaluate=None, **train):
    settings = {"batch_size": 4, "learning_rate": 1e-2, "max_steps": 4, "eval_every": 2, "save_every": 2,
                "group_by_length": False, "warmup_ratio": 0.0}
    settings.update(train)
    # dropout on: training draws random numbers, so scoring that drew any would change what follows
    return validate_config({"model": {"name": str(model_dir)}, "data": {"train": "unused.jsonl", "max_length": 160},
                            "lora": {"r": 4, "alpha": 8, "dropout": 0.1}, "train": settings,
                            "evaluate": {"batch_size": 3, "max_new_tokens": 3, **(evaluate or {})}})


def metrics_lines(run: RunDir) -> list[dict]:
    return [json.loads(line) for line in run.metrics.read_text().splitlines()]


def test_val_metrics_are_recorded_next_to_the_loss_and_at_the_best_step(tiny_model_dir, tmp_path, tiny_splits):
    run = RunDir(tmp_path / "run")
    cfg = config_of(tiny_model_dir, val_metrics=["accuracy", "f1"])
    summary = train(cfg, run, RunInputs(cfg, tiny_splits(n_val=6)))
    validations = [line for line in metrics_lines(run) if "val_loss" in line]
    assert [line["step"] for line in validations] == [2, 4]
    for line in validations:
        assert set(line) == {"step", "val_loss", "val_accuracy", "val_f1"}
        assert line["val_accuracy"] in {i / 6 for i in range(7)}  # a share of the 6 validation rows
    best = next(line for line in validations if line["step"] == summary["best_step"])
    assert summary["best_val_metrics"] == {key: value for key, value in best.items() if key != "step"}
    assert json.loads(run.train_summary.read_text())["best_val_metrics"] == summary["best_val_metrics"]


def test_val_metrics_score_only_the_first_rows(tiny_model_dir, tmp_path, tiny_splits, monkeypatch):
    import tunesmith.train.validation as validation

    scored = []
    real = validation.answer

    def counting(model, tokenizer, examples, *args):
        scored.append([example.location for example in examples])
        return real(model, tokenizer, examples, *args)

    monkeypatch.setattr(validation, "answer", counting)
    splits = tiny_splits(n_val=6)
    cfg = config_of(tiny_model_dir, val_metrics=["accuracy"], val_metrics_rows=4)
    train(cfg, RunDir(tmp_path / "run"), RunInputs(cfg, splits))
    assert scored == [[example.location for example in splits.validation[:4]]] * 2


@pytest.mark.parametrize("mode", ["likelihood", "generate"])
def test_training_is_the_same_with_and_without_val_metrics(mode, tiny_model_dir, tmp_path, tiny_splits):
    plain, measured = RunDir(tmp_path / "plain"), RunDir(tmp_path / "measured")
    evaluate = {"classification_mode": mode}
    cfg = config_of(tiny_model_dir, evaluate, max_steps=6)
    train(cfg, plain, RunInputs(cfg, tiny_splits()))
    cfg = config_of(tiny_model_dir, evaluate, max_steps=6, val_metrics=["accuracy"])
    train(cfg, measured, RunInputs(cfg, tiny_splits()))
    losses = [[line["loss"] for line in metrics_lines(run) if "loss" in line] for run in (plain, measured)]
    assert losses[0] == losses[1]
    val_losses = [[line["val_loss"] for line in metrics_lines(run) if "val_loss" in line] for run in (plain, measured)]
    assert val_losses[0] == val_losses[1]
    a = load_file(plain.checkpoints / "step-000006" / "weights" / "adapter_model.safetensors")
    b = load_file(measured.checkpoints / "step-000006" / "weights" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_on_validation_gets_what_metrics_jsonl_records(tiny_model_dir, tmp_path, tiny_splits):
    run = RunDir(tmp_path / "run")
    seen = []
    cfg = config_of(tiny_model_dir, val_metrics=["accuracy"])
    train(cfg, run, RunInputs(cfg, tiny_splits()),
          on_validation=lambda step, values: seen.append({"step": step, **values}))
    assert seen == [line for line in metrics_lines(run) if "val_loss" in line]
    assert [line["step"] for line in seen] == [2, 4] and all("val_accuracy" in line for line in seen)


def test_an_error_raised_by_on_validation_stops_training_at_that_step(tiny_model_dir, tmp_path, tiny_splits):
    class Pruned(Exception):
        pass

    def prune_at_four(step, values):
        if step == 4:
            raise Pruned(f"at step {step}")

    run = RunDir(tmp_path / "run")
    with pytest.raises(Pruned, match="at step 4"):
        cfg = config_of(tiny_model_dir, max_steps=8)
        train(cfg, run, RunInputs(cfg, tiny_splits()), on_validation=prune_at_four)
    assert max(line["step"] for line in metrics_lines(run)) == 4
    assert (run.checkpoints / "step-000004").is_dir()  # the step's bookkeeping was done before the hook
    assert not run.train_summary.exists()
    assert not run.lock_file.exists()  # the lock was released (its file goes with it)


def test_val_metrics_need_validation_rows_before_the_model_loads(tiny_model_dir, tmp_path, tiny_splits, error_of,
                                                                 monkeypatch):
    import tunesmith.train.recipe as recipe

    monkeypatch.setattr(recipe, "load_training_model", lambda *args: pytest.fail("the model was loaded"))
    config = config_of(tiny_model_dir, val_metrics=["accuracy"])
    message = error_of(lambda: train(config, RunDir(tmp_path / "run"), RunInputs(config, tiny_splits(n_val=0))))
    assert message.startswith("config: train.val_metrics: there are no validation rows")


def test_val_metrics_must_be_metrics_of_the_task(tiny_model_dir, tmp_path, tiny_splits, error_of):
    config = config_of(tiny_model_dir, val_metrics=["bleu"])
    message = error_of(lambda: train(config, RunDir(tmp_path / "run"), RunInputs(config, tiny_splits())))
    assert message.startswith("config: train.val_metrics: 'bleu' is not a classification metric")
    with pytest.raises(ConfigError, match="train.val_metrics: 'acc': not a task metric"):
        config_of(tiny_model_dir, val_metrics=["acc"])
    with pytest.raises(ConfigError, match="train.val_metrics: 'bleu' is not a classification metric"):
        config_of(tiny_model_dir, {"task": "classification"}, val_metrics=["bleu"])
