import json
import math
import shutil

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from tunesmith.config import validate_config
from tunesmith.data.example import Splits
from tunesmith.data.tokenize import tokenize_examples
from tunesmith.run_dir import RunDir
from tunesmith.train import TrainingError, supervised_loss_sum, train
from tunesmith.train.batching import collate, epoch_batches
from spam_rows import make_examples


def tiny_splits(n_train=16, n_val=4) -> Splits:
    return Splits(train=make_examples(n_train), validation=make_examples(n_val, 100), test=make_examples(4, 200),
                  format="classification", labels=["ham", "spam"])


def tiny_config(model_dir, **train):
    settings = {"batch_size": 4, "learning_rate": 1e-2, "eval_every": 2, "save_every": 2, "group_by_length": False,
                "warmup_ratio": 0.0}
    settings.update(train)
    return validate_config({"model": {"name": str(model_dir)}, "data": {"train": "unused.jsonl", "max_length": 160},
                            "lora": {"r": 4, "alpha": 8, "dropout": 0.1}, "train": settings})


def adapter_weights(folder):
    return load_file(folder / "adapter_model.safetensors")


def test_supervised_loss_equals_full_logits(tiny_model, tiny_tokenizer):
    rows, _ = tokenize_examples(make_examples(5), tiny_tokenizer, max_length=64)
    batch = collate(rows, tiny_tokenizer.pad_token_id)
    loss_sum, count = supervised_loss_sum(tiny_model, batch)
    grads = torch.autograd.grad(loss_sum / count, list(tiny_model.parameters()), allow_unused=True)

    logits = tiny_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    reference = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), batch["labels"][:, 1:].reshape(-1),
                                ignore_index=-100)
    reference_grads = torch.autograd.grad(reference, list(tiny_model.parameters()), allow_unused=True)
    assert count == int((batch["labels"][:, 1:] != -100).sum())
    assert abs(float(loss_sum.detach() / count) - float(reference)) < 1e-5
    for got, want in zip(grads, reference_grads):
        if want is not None:
            assert torch.allclose(got, want, atol=1e-5)


def test_epoch_batches_deterministic_and_complete():
    lengths = [5, 9, 3, 7, 1, 8, 2, 6, 4, 10]
    first = epoch_batches(lengths, 3, seed=1, epoch=0, group_by_length=True)
    assert first == epoch_batches(lengths, 3, seed=1, epoch=0, group_by_length=True)
    assert sorted(i for batch in first for i in batch) == list(range(10))
    assert first != epoch_batches(lengths, 3, seed=1, epoch=1, group_by_length=True)


def test_train_writes_run_files(tiny_model_dir, tmp_path):
    run = RunDir(tmp_path / "run")
    summary = train(tiny_config(tiny_model_dir, max_steps=4), run, tiny_splits())
    assert summary["steps"] == 4 and summary["best_step"] in (2, 4)
    lines = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    assert [line["step"] for line in lines if "loss" in line] == [1, 2, 3, 4]
    assert [line["step"] for line in lines if "val_loss" in line] == [2, 4]
    assert all(math.isfinite(line["loss"]) and line["tokens_per_s"] > 0 for line in lines if "loss" in line)
    assert (run.best / "adapter_model.safetensors").is_file()
    assert sorted(p.name for p in run.checkpoints.glob("step-*")) == ["step-000002", "step-000004"]
    assert any(run.tensorboard.iterdir())
    assert json.loads(run.train_summary.read_text())["train_rows"] == 16


def test_grad_accumulation_equals_large_batch(tiny_model_dir, tmp_path):
    big = RunDir(tmp_path / "big")
    small = RunDir(tmp_path / "small")
    config = dict(max_steps=1, eval_every=10, learning_rate=1e-2)
    # dropout off: the two runs draw random masks in different shapes
    big_config = tiny_config(tiny_model_dir, batch_size=8, **config)
    small_config = tiny_config(tiny_model_dir, batch_size=2, grad_accumulation=4, **config)
    for c in (big_config, small_config):
        c.lora.dropout = 0.0
    train(big_config, big, tiny_splits(n_train=8, n_val=0))
    train(small_config, small, tiny_splits(n_train=8, n_val=0))
    a, b = adapter_weights(big.best), adapter_weights(small.best)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    base = load_file(next(tiny_model_dir.glob("*.safetensors")))  # the update is real, not a no-op
    assert any(float(t.abs().max()) > 0 for k, t in a.items() if "lora_B" in k)
    assert base


def test_resume_equals_uninterrupted(tiny_model_dir, tmp_path):
    config = tiny_config(tiny_model_dir, max_steps=6, save_every=3, eval_every=100, keep_checkpoints=5)
    full = RunDir(tmp_path / "full")
    train(config, full, tiny_splits())
    reference = adapter_weights(full.checkpoints / "step-000006" / "weights")

    resumed = RunDir(tmp_path / "resumed")
    shutil.copytree(full.root, resumed.root)
    shutil.rmtree(resumed.checkpoints / "step-000006")  # as if killed after the step-3 checkpoint
    shutil.rmtree(resumed.best)
    summary = train(config, resumed, tiny_splits(), resume=True)
    assert summary["steps"] == 6
    got = adapter_weights(resumed.checkpoints / "step-000006" / "weights")
    for key in reference:
        assert torch.allclose(got[key], reference[key], atol=1e-6), key
    steps = [json.loads(line)["step"] for line in resumed.metrics.read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6, 6]  # each step once (+ the final validation), none duplicated


def test_full_fine_tuning_saves_full_weights(tiny_model_dir, tmp_path):
    config = tiny_config(tiny_model_dir, max_steps=2, learning_rate=1e-3)
    config.method = "full"
    run = RunDir(tmp_path / "run")
    train(config, run, tiny_splits())
    assert (run.best / "model.safetensors").is_file() and (run.best / "config.json").is_file()


def test_non_finite_loss_names_step_and_rows(tiny_model_dir, tmp_path, monkeypatch):
    import tunesmith.train.loop as loop

    real = loop.supervised_loss_sum

    def poisoned(model, batch):
        loss, count = real(model, batch)
        return loss * float("nan"), count

    monkeypatch.setattr(loop, "supervised_loss_sum", poisoned)
    with pytest.raises(TrainingError, match=r"non-finite loss at step 1 on rows mem.jsonl:\d+"):
        train(tiny_config(tiny_model_dir, max_steps=2), RunDir(tmp_path / "run"), tiny_splits())


def test_early_stopping_keeps_the_best(tiny_model_dir, tmp_path, monkeypatch):
    import tunesmith.train.loop as loop

    rising = iter([1.0, 2.0, 3.0, 4.0])
    monkeypatch.setattr(loop, "mean_supervised_loss", lambda *args: (next(rising), 10))
    run = RunDir(tmp_path / "run")
    summary = train(tiny_config(tiny_model_dir, max_steps=8, eval_every=2, early_stopping_patience=1), run,
                    tiny_splits())
    assert summary["stopped_early"] and summary["steps"] == 4
    assert summary["best_step"] == 2 and summary["best_val_loss"] == 1.0
    assert (run.checkpoints / "step-000004").is_dir()  # the stopping step is checkpointed too


def test_compiled_training_matches_eager(tiny_model_dir, tmp_path):
    eager, compiled = RunDir(tmp_path / "eager"), RunDir(tmp_path / "compiled")
    config = tiny_config(tiny_model_dir, max_steps=2, eval_every=10)
    config.lora.dropout = 0.0
    train(config, eager, tiny_splits(n_val=0))
    config.train.compile = True
    train(config, compiled, tiny_splits(n_val=0))
    a, b = adapter_weights(eager.best), adapter_weights(compiled.best)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key


@pytest.mark.parametrize("train_head", [False, True])
def test_fused_head_cross_entropy_equals_autograd_across_chunks(monkeypatch, train_head):
    from tunesmith.train import loss as loss_module

    monkeypatch.setattr(loss_module, "_HEAD_CHUNK_ROWS", 7)  # 30 rows: several chunks and a ragged last one
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(30, 16, generator=generator, requires_grad=True)
    weight = (torch.randn(50, 16, generator=generator) * 0.5).requires_grad_(train_head)
    targets = torch.randint(0, 50, (30,), generator=generator)
    reference = F.cross_entropy(F.linear(hidden, weight), targets, reduction="sum")
    wanted = torch.autograd.grad(reference * 0.3, [hidden, weight] if train_head else [hidden])
    fused = loss_module._LinearCrossEntropySum.apply(hidden, weight, targets)
    got = torch.autograd.grad(fused * 0.3, [hidden, weight] if train_head else [hidden])
    assert abs(float(fused) - float(reference)) < 1e-4
    for g, w in zip(got, wanted):
        assert torch.allclose(g, w, atol=1e-6)


def test_right_padding_is_detected_so_only_those_batches_drop_the_mask():
    from tunesmith.train.loss import _right_padded

    assert _right_padded(torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0]]))
    assert not _right_padded(torch.tensor([[1, 1, 1], [0, 1, 1]]))  # left padding needs the mask
    assert not _right_padded(torch.tensor([[1, 0, 1]]))
