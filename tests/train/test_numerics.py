"""Numerical safety: a NaN/inf loss or gradient norm stops training (naming the step and its rows, the last good
checkpoint intact) or, with `train.on_nonfinite: skip`, drops exactly that step's update and goes on."""

import itertools
import json
import logging
import shutil

import pytest
import torch
from safetensors.torch import load_file

import tunesmith.train.loop as loop
from tunesmith.config import validate_config
from tunesmith.data.example import Splits
from tunesmith.run_dir import RunDir
from tunesmith.train import TrainingError, train
from tunesmith.train.batching import epoch_batches
from tunesmith.train.loop import nonfinite_problem
from spam_rows import make_examples as spam_examples

SEED, BATCH, ROWS, STEPS = 42, 4, 16, 5


def splits() -> Splits:
    # no validation rows: every step is a plain optimizer step, nothing else touches the weights
    return Splits(train=spam_examples(ROWS), validation=[], test=[], format="classification", labels=["ham", "spam"])


def config(model_dir, **train_settings):
    settings = {"max_steps": STEPS, "batch_size": BATCH, "learning_rate": 1e-2, "save_every": 1, "eval_every": 100,
                "keep_checkpoints": 10, "group_by_length": False, "warmup_ratio": 0.0, "threads": 1, "seed": SEED}
    settings.update(train_settings)
    return validate_config({"model": {"name": str(model_dir)}, "data": {"train": "unused.jsonl", "max_length": 160},
                            "lora": {"r": 4, "alpha": 8, "dropout": 0.1}, "train": settings})


def batch_sources(step: int) -> list[str]:
    """The rows of a first-epoch step, recomputed from the pure batch order (no length grouping)."""
    rows = epoch_batches([0] * ROWS, BATCH, SEED, epoch=0, group_by_length=False)[step - 1]
    return [f"mem.jsonl:{i + 1}" for i in rows]


def poison_loss_at(monkeypatch, step: int) -> None:
    """The training loss of the ``step``-th step of this process is NaN (one micro-batch per step)."""
    real = loop.supervised_loss_sum
    calls = itertools.count(1)

    def poisoned(model, batch):
        loss, count = real(model, batch)
        return (loss * float("nan") if next(calls) == step else loss), count

    monkeypatch.setattr(loop, "supervised_loss_sum", poisoned)


def poison_gradient_at(monkeypatch, step: int) -> None:
    """One LoRA matrix gets a NaN gradient in the ``step``-th backward pass; the loss itself stays finite."""
    real = loop.add_lora

    def add_lora_with_hook(model, lora_config):
        model = real(model, lora_config)
        param = next(p for name, p in model.named_parameters() if "lora_B" in name)
        backward_passes = itertools.count(1)
        param.register_hook(lambda grad: grad * float("nan") if next(backward_passes) == step else grad)
        return model

    monkeypatch.setattr(loop, "add_lora", add_lora_with_hook)


def weights(run: RunDir, step: int) -> dict[str, torch.Tensor]:
    return load_file(run.checkpoints / f"step-{step:06d}" / "weights" / "adapter_model.safetensors")


def checkpoint_file(run: RunDir, step: int, name: str):
    return torch.load(run.checkpoints / f"step-{step:06d}" / name, weights_only=True)


def metric_lines(run: RunDir) -> list[dict]:
    return [json.loads(line) for line in run.metrics.read_text().splitlines()]


def checkpoint_steps(run: RunDir) -> list[str]:
    return sorted(p.name for p in run.checkpoints.glob("step-*"))


def test_nonfinite_problem_names_the_loss_first():
    assert nonfinite_problem(2.5, 0.7) is None
    assert nonfinite_problem(float("nan"), 0.7) == "non-finite loss"
    assert nonfinite_problem(float("inf"), float("nan")) == "non-finite loss"
    assert nonfinite_problem(2.5, float("-inf")) == "non-finite gradient norm"
    assert nonfinite_problem(2.5, float("nan")) == "non-finite gradient norm"


def test_stop_on_nan_loss_names_step_and_rows_and_keeps_the_last_checkpoint(tiny_model_dir, tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    poison_loss_at(monkeypatch, step=3)
    with pytest.raises(TrainingError) as raised:
        train(config(tiny_model_dir), run, splits())
    assert str(raised.value) == (
        f"non-finite loss at step 3 on rows {', '.join(batch_sources(3))} "
        "(lower train.learning_rate or set train.on_nonfinite: skip; the last good checkpoint is kept)"
    )
    assert checkpoint_steps(run) == ["step-000001", "step-000002"]
    assert [line["step"] for line in metric_lines(run)] == [1, 2]

    monkeypatch.undo()  # the cause is gone: the kept checkpoint resumes to the end
    summary = train(config(tiny_model_dir), run, splits(), resume=True)
    assert summary["steps"] == STEPS and summary["skipped_steps"] == []
    assert [line["step"] for line in metric_lines(run)] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("max_grad_norm", [1.0, None], ids=["clipped", "unclipped"])
def test_stop_on_nan_gradient(tiny_model_dir, tmp_path, monkeypatch, max_grad_norm):
    run = RunDir(tmp_path / "run")
    poison_gradient_at(monkeypatch, step=2)
    with pytest.raises(TrainingError, match=r"^non-finite gradient norm at step 2 on rows ") as raised:
        train(config(tiny_model_dir, max_grad_norm=max_grad_norm), run, splits())
    assert ", ".join(batch_sources(2)) in str(raised.value)
    assert checkpoint_steps(run) == ["step-000001"]
    step_one = metric_lines(run)[0]
    assert step_one["grad_norm"] > 0  # measured (and logged) whether or not it is clipped


def test_skip_nan_loss_drops_exactly_that_update(tiny_model_dir, tmp_path, monkeypatch, caplog):
    run = RunDir(tmp_path / "run")
    poison_loss_at(monkeypatch, step=3)
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        summary = train(config(tiny_model_dir, on_nonfinite="skip"), run, splits())

    assert summary["steps"] == STEPS and summary["skipped_steps"] == [3]
    assert f"skipped the update: non-finite loss at step 3 on rows {', '.join(batch_sources(3))}" in caplog.text
    before, skipped, after = weights(run, 2), weights(run, 3), weights(run, 4)
    assert all(torch.equal(before[key], skipped[key]) for key in before)
    assert any(not torch.equal(skipped[key], after[key]) for key in skipped)  # training went on
    # AdamW and the schedule did not advance either: both still count 2 updates after step 3
    assert {int(s["step"]) for s in checkpoint_file(run, 3, "optimizer.pt")["state"].values()} == {2}
    assert checkpoint_file(run, 3, "scheduler.pt")["last_epoch"] == 2
    assert checkpoint_file(run, 5, "scheduler.pt")["last_epoch"] == 4
    # ...but the batch counts as consumed: step 3's checkpoint points past it
    states = [json.loads((run.checkpoints / f"step-{s:06d}" / "trainer_state.json").read_text()) for s in (2, 3)]
    assert states[0]["cursor"] == [0, 2] and states[1]["cursor"] == [0, 3]

    lines = metric_lines(run)
    assert [line["step"] for line in lines] == [1, 2, 3, 4, 5]
    assert lines[2]["skipped"] is True and lines[2]["reason"] == "non-finite loss" and lines[2]["loss"] is None
    assert not any(line.get("skipped") for line in lines[:2] + lines[3:])
    assert json.loads(run.train_summary.read_text())["skipped_steps"] == [3]

    # Resuming from step 2 with the same bad batch ahead replays the same skip and ends on the same weights.
    resumed = RunDir(tmp_path / "resumed")
    shutil.copytree(run.root, resumed.root)
    for step in (3, 4, 5):
        shutil.rmtree(resumed.checkpoints / f"step-{step:06d}")
    monkeypatch.undo()
    poison_loss_at(monkeypatch, step=1)  # the resumed process's first step is step 3
    summary = train(config(tiny_model_dir, on_nonfinite="skip"), resumed, splits(), resume=True)
    assert summary["skipped_steps"] == [3]
    reference, got = weights(run, 5), weights(resumed, 5)
    assert all(torch.equal(reference[key], got[key]) for key in reference)


def test_skip_nan_gradient_keeps_weights_and_logs_the_finite_loss(tiny_model_dir, tmp_path, monkeypatch):
    run = RunDir(tmp_path / "run")
    poison_gradient_at(monkeypatch, step=2)
    summary = train(config(tiny_model_dir, on_nonfinite="skip", max_steps=3), run, splits())
    assert summary["steps"] == 3 and summary["skipped_steps"] == [2]
    before, skipped = weights(run, 1), weights(run, 2)
    assert all(torch.equal(before[key], skipped[key]) for key in before)
    line = metric_lines(run)[1]
    assert line["skipped"] is True and line["reason"] == "non-finite gradient norm"
    assert line["loss"] > 0 and line["grad_norm"] is None
