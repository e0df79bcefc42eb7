"""The training budget: `train.epochs: auto` by the dataset's size, `max_steps` overriding it, `auto` validation
and checkpoint intervals, what the log and the summary say, and a resumed run keeping the budget it started with."""

from __future__ import annotations

import json
import logging
import shutil

import pytest
import torch
from safetensors.torch import load_file

import tunesmith.train.budget as budget_module
from tunesmith.config import validate_config
from tunesmith.config.schema import TrainConfig
from tunesmith.data.run_inputs import RunInputs
from tunesmith.run_dir import RunDir
from tunesmith.train import train
from tunesmith.train.budget import Budget, auto_epochs, describe_budget, plan_budget


@pytest.mark.parametrize(("rows", "batches", "epochs"), [
    (8, 1, 25),        # 100 rows seen would take 13 epochs, 200 steps 200: capped at 25
    (60, 8, 25),       # 200 steps would take 25 epochs
    (270, 34, 6),      # 3 epochs are 102 steps: 6 make the 200 steps
    (1_000, 125, 3),   # 375 steps: OpenAI's default of 3 stands
    (8_000, 1_000, 3),  # 24,000 rows seen
    (9_000, 1_125, 2),  # 27,000 rows seen would be over 25,000
    (30_000, 3_750, 1),
])
def test_auto_epochs_follow_the_dataset_size(rows, batches, epochs):
    assert auto_epochs(rows, batches)[0] == epochs


def test_auto_epochs_say_why():
    assert auto_epochs(270, 34)[1] == ("270 training rows, 34 steps per epoch: 3 epochs would make only 102 steps; at "
                                       "least 200 steps and 100 rows seen")
    assert "capped at 25 epochs" in auto_epochs(8, 1)[1]
    assert "more than the 25,000" in auto_epochs(30_000, 3_750)[1]


def test_plan_budget_from_settings():
    auto = plan_budget(TrainConfig(), 270, 34)
    assert (auto.epochs, auto.steps, auto.eval_every, auto.save_every) == (6, 204, 21, 21)
    capped = plan_budget(TrainConfig(max_steps=7, eval_every=3), 270, 34)
    assert (capped.steps, capped.eval_every, capped.save_every) == (7, 3, 3)  # save_every: auto follows eval_every
    assert capped.why.startswith("max_steps 7 (train.max_steps overrides epochs")
    fixed = plan_budget(TrainConfig(epochs=1.5, eval_every=10, save_every=20), 270, 34)
    assert (fixed.epochs, fixed.steps, fixed.eval_every, fixed.save_every) == (1.5, 51, 10, 20)


def test_a_started_budget_stands_for_auto_settings():
    started = Budget(epochs=4, steps=136, eval_every=7, save_every=7, why="epochs: auto → 4 (as it was)")
    assert plan_budget(TrainConfig(), 270, 34, started) == started
    longer = plan_budget(TrainConfig(max_steps=300), 270, 34, started)  # a number set on resume applies
    assert (longer.steps, longer.eval_every) == (300, 30)
    assert plan_budget(TrainConfig(epochs=2), 270, 34, started).steps == 68
    assert Budget.from_json(json.loads(json.dumps(started.to_json()))) == started


def test_describe_budget_names_each_choice():
    config = TrainConfig(eval_every=5)
    line = describe_budget(plan_budget(config, 270, 34), config)
    assert line.startswith("epochs: auto → 6 (270 training rows, 34 steps per epoch: ")
    assert line.endswith("; eval_every 5; save_every: auto → 5 (at every validation)")


def run_config(model_dir, **train):
    settings = {"batch_size": 4, "learning_rate": 1e-2, "group_by_length": False, "warmup_ratio": 0.1,
                "keep_checkpoints": 20}
    settings.update(train)
    return validate_config({"model": {"name": str(model_dir)}, "data": {"train": "unused.jsonl", "max_length": 160},
                            "lora": {"r": 4, "alpha": 8, "dropout": 0.1}, "train": settings})


def test_auto_budget_is_logged_and_recorded(tiny_model_dir, tmp_path, tiny_splits, monkeypatch, caplog):
    monkeypatch.setattr(budget_module, "MIN_STEPS", 32)
    run = RunDir(tmp_path / "run")
    with caplog.at_level(logging.INFO, logger="tunesmith"):
        cfg = run_config(tiny_model_dir)
        summary = train(cfg, run, RunInputs(cfg, tiny_splits()))
    # 16 rows in 4 steps per epoch: 3 epochs are 12 steps, 8 make the 32 (and show more than 100 rows)
    expected = ("epochs: auto → 8 (16 training rows, 4 steps per epoch: 3 epochs would make only 12 steps; at least "
                "32 steps and 100 rows seen); eval_every: auto → 4 (10 validations in 32 steps); save_every: auto → "
                "4 (at every validation)")
    assert expected in caplog.messages
    assert summary["steps"] == summary["planned_steps"] == 32
    assert summary["budget"] == {"epochs": 8, "steps": 32, "eval_every": 4, "save_every": 4,
                                 "why": expected.split("; eval_every")[0]}
    validations = [json.loads(line)["step"] for line in run.metrics.read_text().splitlines() if "val_loss" in line]
    assert validations == list(range(4, 33, 4))


def test_a_resumed_run_keeps_the_budget_it_started_with(tiny_model_dir, tmp_path, tiny_splits, monkeypatch):
    monkeypatch.setattr(budget_module, "MIN_STEPS", 32)
    config = run_config(tiny_model_dir)
    full = RunDir(tmp_path / "full")
    train(config, full, RunInputs(config, tiny_splits()))
    reference = load_file(full.checkpoints / "step-000032" / "weights" / "adapter_model.safetensors")

    resumed = RunDir(tmp_path / "resumed")
    shutil.copytree(full.root, resumed.root)
    for step in range(20, 33, 4):  # as if killed after the step-16 checkpoint
        shutil.rmtree(resumed.checkpoints / f"step-{step:06d}")
    shutil.rmtree(resumed.best)
    monkeypatch.setattr(budget_module, "MIN_STEPS", 48)  # auto would now choose 12 epochs
    summary = train(config, resumed, RunInputs(config, tiny_splits()), resume=True)
    assert summary["steps"] == 32 and summary["budget"]["epochs"] == 8
    got = load_file(resumed.checkpoints / "step-000032" / "weights" / "adapter_model.safetensors")
    assert all(torch.allclose(got[key], reference[key], atol=1e-6) for key in reference)
