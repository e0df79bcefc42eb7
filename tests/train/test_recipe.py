"""The training recipe: run files, gradient accumulation equal to a large batch, exact resume, full fine-tuning,
early stopping, compiled = eager, every method (lora, dora, full) training and reloading, gradient checkpointing
equal to none, and numerical safety (a NaN/inf loss or gradient norm stops training, naming the step and its rows,
the last good checkpoint intact, or with `train.on_nonfinite: skip` drops exactly that step's update and goes
on). Kernel settings that cannot run here fail before the model loads; on a GPU (`pytest -m gpu`) training runs
in bf16."""

import itertools
import json
import logging
import math
import shutil

import pytest
import torch
from safetensors.torch import load_file

import tunesmith.predict.loss as loss_module
import tunesmith.train.recipe as recipe
import tunesmith.train.validation as validation
from tunesmith.config import save_config, validate_config
from tunesmith.data.run_inputs import RunInputs
from tunesmith.models import load_tuned_model, loading
from tunesmith.predict.loss import mean_supervised_loss
from tunesmith.run_dir import RunDir
from tunesmith.train import TrainingError, train
from tunesmith.train.batching import epoch_batches
from tunesmith.train.recipe import nonfinite_problem


def tiny_config(model_dir, **train):
    settings = {"batch_size": 4, "learning_rate": 1e-2, "eval_every": 2, "save_every": 2, "group_by_length": False,
                "warmup_ratio": 0.0}
    settings.update(train)
    return validate_config({"model": {"name": str(model_dir)}, "data": {"train": "unused.jsonl", "max_length": 160},
                            "lora": {"r": 4, "alpha": 8, "dropout": 0.1}, "train": settings})


def adapter_weights(folder):
    return load_file(folder / "adapter_model.safetensors")


def test_train_writes_run_files(tiny_model_dir, tmp_path, tiny_splits):
    run = RunDir(tmp_path / "run")
    cfg = tiny_config(tiny_model_dir, max_steps=4)
    summary = train(cfg, run, RunInputs(cfg, tiny_splits()))
    assert summary["steps"] == 4 and summary["best_step"] in (2, 4)
    lines = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    assert [line["step"] for line in lines if "loss" in line] == [1, 2, 3, 4]
    assert [line["step"] for line in lines if "val_loss" in line] == [2, 4]
    assert all(math.isfinite(line["loss"]) and line["tokens_per_s"] > 0 for line in lines if "loss" in line)
    assert (run.best / "adapter_model.safetensors").is_file()
    assert sorted(p.name for p in run.checkpoints.glob("step-*")) == ["step-000002", "step-000004"]
    assert any(run.tensorboard.iterdir())
    assert json.loads(run.train_summary.read_text())["train_rows"] == 16


def test_grad_accumulation_equals_large_batch(tiny_model_dir, tmp_path, tiny_splits):
    big = RunDir(tmp_path / "big")
    small = RunDir(tmp_path / "small")
    config = dict(max_steps=1, eval_every=10, learning_rate=1e-2)
    # dropout off: the two runs draw random masks in different shapes
    big_config = tiny_config(tiny_model_dir, batch_size=8, **config)
    small_config = tiny_config(tiny_model_dir, batch_size=2, grad_accumulation=4, **config)
    for c in (big_config, small_config):
        c.lora.dropout = 0.0
    train(big_config, big, RunInputs(big_config, tiny_splits(n_train=8, n_val=0)))
    train(small_config, small, RunInputs(small_config, tiny_splits(n_train=8, n_val=0)))
    a, b = adapter_weights(big.best), adapter_weights(small.best)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    # The update is real: LoRA's B matrices start at zero, and one step moved every one of them.
    assert all(float(t.abs().max()) > 1e-4 for k, t in a.items() if "lora_B" in k)
    losses = [json.loads(run.metrics.read_text().splitlines()[0])["loss"] for run in (big, small)]
    assert abs(losses[0] - losses[1]) < 1e-6  # the same loss, normalized over the same 8 rows' tokens


def test_resume_equals_uninterrupted(tiny_model_dir, tiny_splits, killed_and_resumed):
    config = tiny_config(tiny_model_dir, max_steps=6, save_every=3, eval_every=100, keep_checkpoints=5)
    full, resumed, summary = killed_and_resumed(config, tiny_splits)  # killed after the step-3 checkpoint
    reference = adapter_weights(full.checkpoints / "step-000006" / "weights")
    assert summary["steps"] == 6
    got = adapter_weights(resumed.checkpoints / "step-000006" / "weights")
    for key in reference:
        assert torch.allclose(got[key], reference[key], atol=1e-6), key
    steps = [json.loads(line)["step"] for line in resumed.metrics.read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6, 6]  # each step once (+ the final validation), none duplicated


def test_full_fine_tuning_saves_full_weights(tiny_model_dir, tmp_path, tiny_splits):
    config = tiny_config(tiny_model_dir, max_steps=4, learning_rate=1e-3, eval_every=4)
    config.method = "full"
    run = RunDir(tmp_path / "run")
    summary = train(config, run, RunInputs(config, tiny_splits()))
    assert summary["trainable_params"] == summary["total_params"]  # every weight trains
    base = load_file(tiny_model_dir / "model.safetensors")
    tuned = load_file(run.best / "model.safetensors")
    assert tuned.keys() == base.keys()
    changed = [key for key in base if not torch.equal(base[key], tuned[key])]
    assert len(changed) == len(base)  # full fine-tuning moves every weight, norms and embeddings included
    losses = [line["loss"] for line in map(json.loads, run.metrics.read_text().splitlines()) if "loss" in line]
    assert losses[-1] < losses[0]


def test_non_finite_loss_names_step_and_rows(tiny_model_dir, tmp_path, monkeypatch, tiny_splits):
    real = loss_module.supervised_loss_sum

    def poisoned(model, batch):
        loss, count = real(model, batch)
        return loss * float("nan"), count

    monkeypatch.setattr(loss_module, "supervised_loss_sum", poisoned)
    with pytest.raises(TrainingError, match=r"non-finite loss at step 1 on rows mem.jsonl:\d+"):
        cfg = tiny_config(tiny_model_dir, max_steps=2)
        train(cfg, RunDir(tmp_path / "run"), RunInputs(cfg, tiny_splits()))


def test_early_stopping_keeps_the_best(tiny_model_dir, tmp_path, monkeypatch, tiny_splits):
    rising = iter([1.0, 2.0, 3.0, 4.0])
    monkeypatch.setattr(validation, "mean_supervised_loss", lambda *args: (next(rising), 10))
    run = RunDir(tmp_path / "run")
    cfg = tiny_config(tiny_model_dir, max_steps=8, eval_every=2, early_stopping_patience=1)
    summary = train(cfg, run, RunInputs(cfg, tiny_splits()))
    assert summary["stopped_early"] and summary["steps"] == 4
    assert summary["best_step"] == 2 and summary["best_val_loss"] == 1.0
    assert (run.checkpoints / "step-000004").is_dir()  # the stopping step is checkpointed too


def test_compiled_training_matches_eager(tiny_model_dir, tmp_path, tiny_splits):
    eager, compiled = RunDir(tmp_path / "eager"), RunDir(tmp_path / "compiled")
    config = tiny_config(tiny_model_dir, max_steps=2, eval_every=10)
    config.lora.dropout = 0.0
    train(config, eager, RunInputs(config, tiny_splits(n_val=0)))
    config.train.compile = True
    train(config, compiled, RunInputs(config, tiny_splits(n_val=0)))
    a, b = adapter_weights(eager.best), adapter_weights(compiled.best)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key


SEED, BATCH, ROWS, STEPS = 42, 4, 16, 5


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
    real = loss_module.supervised_loss_sum
    calls = itertools.count(1)

    def poisoned(model, batch):
        loss, count = real(model, batch)
        return (loss * float("nan") if next(calls) == step else loss), count

    monkeypatch.setattr(loss_module, "supervised_loss_sum", poisoned)


def poison_gradient_at(monkeypatch, step: int) -> None:
    """One LoRA matrix gets a NaN gradient in the ``step``-th backward pass; the loss itself stays finite."""
    real = loading.add_lora

    def add_lora_with_hook(model, lora_config, **options):
        model = real(model, lora_config, **options)
        param = next(p for name, p in model.named_parameters() if "lora_B" in name)
        backward_passes = itertools.count(1)
        param.register_hook(lambda grad: grad * float("nan") if next(backward_passes) == step else grad)
        return model

    monkeypatch.setattr(loading, "add_lora", add_lora_with_hook)


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


def test_stop_on_nan_loss_names_step_and_rows_and_keeps_the_last_checkpoint(tiny_model_dir, tmp_path, monkeypatch,
                                                                           tiny_splits):
    run = RunDir(tmp_path / "run")
    poison_loss_at(monkeypatch, step=3)
    with pytest.raises(TrainingError) as raised:
        cfg = config(tiny_model_dir)
        train(cfg, run, RunInputs(cfg, tiny_splits(ROWS, 0)))
    assert str(raised.value) == (
        f"non-finite loss at step 3 on rows {', '.join(batch_sources(3))} "
        "(lower train.learning_rate or set train.on_nonfinite: skip; the last good checkpoint is kept)"
    )
    assert checkpoint_steps(run) == ["step-000001", "step-000002"]
    assert [line["step"] for line in metric_lines(run)] == [1, 2]

    monkeypatch.undo()  # the cause is gone: the kept checkpoint resumes to the end
    cfg = config(tiny_model_dir)
    summary = train(cfg, run, RunInputs(cfg, tiny_splits(ROWS, 0)), resume=True)
    assert summary["steps"] == STEPS and summary["skipped_steps"] == []
    assert [line["step"] for line in metric_lines(run)] == [1, 2, 3, 4, 5]


@pytest.mark.parametrize("max_grad_norm", [1.0, None], ids=["clipped", "unclipped"])
def test_stop_on_nan_gradient(tiny_model_dir, tmp_path, monkeypatch, max_grad_norm, tiny_splits):
    run = RunDir(tmp_path / "run")
    poison_gradient_at(monkeypatch, step=2)
    with pytest.raises(TrainingError, match=r"^non-finite gradient norm at step 2 on rows ") as raised:
        cfg = config(tiny_model_dir, max_grad_norm=max_grad_norm)
        train(cfg, run, RunInputs(cfg, tiny_splits(ROWS, 0)))
    assert ", ".join(batch_sources(2)) in str(raised.value)
    assert checkpoint_steps(run) == ["step-000001"]
    step_one = metric_lines(run)[0]
    assert step_one["grad_norm"] > 0  # measured (and logged) whether or not it is clipped


def test_skip_nan_loss_drops_exactly_that_update(tiny_model_dir, tmp_path, monkeypatch, caplog, tiny_splits):
    run = RunDir(tmp_path / "run")
    poison_loss_at(monkeypatch, step=3)
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        cfg = config(tiny_model_dir, on_nonfinite="skip")
        summary = train(cfg, run, RunInputs(cfg, tiny_splits(ROWS, 0)))

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
    cfg = config(tiny_model_dir, on_nonfinite="skip")
    summary = train(cfg, resumed, RunInputs(cfg, tiny_splits(ROWS, 0)), resume=True)
    assert summary["skipped_steps"] == [3]
    reference, got = weights(run, 5), weights(resumed, 5)
    assert all(torch.equal(reference[key], got[key]) for key in reference)


def test_skip_nan_gradient_keeps_weights_and_logs_the_finite_loss(tiny_model_dir, tmp_path, monkeypatch, tiny_splits):
    run = RunDir(tmp_path / "run")
    poison_gradient_at(monkeypatch, step=2)
    cfg = config(tiny_model_dir, on_nonfinite="skip", max_steps=3)
    summary = train(cfg, run, RunInputs(cfg, tiny_splits(ROWS, 0)))
    assert summary["steps"] == 3 and summary["skipped_steps"] == [2]
    before, skipped = weights(run, 1), weights(run, 2)
    assert all(torch.equal(before[key], skipped[key]) for key in before)
    line = metric_lines(run)[1]
    assert line["skipped"] is True and line["reason"] == "non-finite gradient norm"
    assert line["loss"] > 0 and line["grad_norm"] is None


def test_resuming_with_another_global_batch_is_refused(tiny_model_dir, tmp_path, tiny_splits, error_of):
    """The cursor counts global batches, so a resume needs the same rows per step, however many processes share
    them (on 1 process after 2 x 4: batch_size 8, or grad_accumulation 2)."""
    run = RunDir(tmp_path / "run")
    cfg = tiny_config(tiny_model_dir, max_steps=2, batch_size=8)
    train(cfg, run, RunInputs(cfg, tiny_splits()))
    cfg = tiny_config(tiny_model_dir, max_steps=4, batch_size=4)
    message = error_of(lambda: train(cfg, run, RunInputs(cfg, tiny_splits()), resume=True))
    assert "global batch of 8 rows per step; now it would be 4 (batch_size 4 x 1 processes x grad_accumulation 1)" \
        in message
    cfg = tiny_config(tiny_model_dir, max_steps=4, batch_size=4, grad_accumulation=2)
    summary = train(cfg, run, RunInputs(cfg, tiny_splits()), resume=True)
    assert summary["steps"] == 4 and summary["global_batch"] == 8


# ---- methods and gradient checkpointing -------------------------------------------------------------------------


def loss_lines(run: RunDir) -> list[float]:
    return [line["loss"] for line in metric_lines(run) if "loss" in line]


@pytest.mark.parametrize("method", ["lora", "dora", "full"])
def test_each_method_trains_and_its_tuned_model_loads_back(method, tiny_model_dir, tmp_path, tiny_splits):
    """The reloaded best weights (base + adapter, or the full model) give the validation loss training measured."""
    config = tiny_config(tiny_model_dir, max_steps=4, eval_every=4, save_every=4)
    config.method = method
    config.lora.dropout = 0.0
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    save_config(config, run.config_path)
    splits = tiny_splits()
    summary = train(config, run, RunInputs(config, splits))
    losses = loss_lines(run)
    assert losses[-1] < losses[0]
    assert (summary["trainable_params"] == summary["total_params"]) == (method == "full")
    if method != "full":
        adapter = json.loads((run.best / "adapter_config.json").read_text())
        assert adapter["use_dora"] == (method == "dora")
        assert adapter["base_model_name_or_path"] == str(tiny_model_dir)

    tuned, tokenizer = load_tuned_model(run.root, torch.device("cpu"))
    _, validation_rows, _ = recipe.training_rows(config, splits, tokenizer)
    validation_loss, _ = mean_supervised_loss(tuned, validation_rows, 4, tokenizer.pad_token_id)
    assert validation_loss == pytest.approx(summary["best_val_loss"], rel=1e-5)


@pytest.mark.parametrize("method", ["full", "lora"])
def test_gradient_checkpointing_trains_the_same_weights(method, tiny_model_dir, tmp_path, tiny_splits):
    plain, checkpointed = RunDir(tmp_path / "plain"), RunDir(tmp_path / "checkpointed")
    config = tiny_config(tiny_model_dir, max_steps=3, eval_every=10, learning_rate=1e-3)
    config.method = method
    config.lora.dropout = 0.0  # dropout masks would differ between a forward and its recompute's RNG use
    train(config, plain, RunInputs(config, tiny_splits(n_val=0)))
    config.train.gradient_checkpointing = True
    train(config, checkpointed, RunInputs(config, tiny_splits(n_val=0)))
    assert loss_lines(plain) == pytest.approx(loss_lines(checkpointed), abs=1e-5)
    name = "model.safetensors" if method == "full" else "adapter_model.safetensors"
    a, b = load_file(plain.best / name), load_file(checkpointed.best / name)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="QLoRA needs a CUDA GPU")
def test_qlora_trains_adapters_on_a_4bit_base_and_exports_an_unquantized_merge(tmp_path, tiny_tokenizer, tiny_splits,
                                                                               monkeypatch):
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    from tunesmith.export import export_run

    folder = tmp_path / "model"
    torch.manual_seed(0)
    # in_features of at least 64: bitsandbytes quantizes in blocks of 64 values
    LlamaForCausalLM(LlamaConfig(vocab_size=len(tiny_tokenizer), hidden_size=64, intermediate_size=128,
                                 num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                 bos_token_id=1, eos_token_id=2, pad_token_id=2)).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    trainings = []
    real_set_up = recipe.set_up
    monkeypatch.setattr(recipe, "set_up", lambda *args: trainings.append(real_set_up(*args)) or trainings[-1])

    runs = {}
    for checkpointing in (False, True):
        config = tiny_config(folder, max_steps=4, eval_every=4, gradient_checkpointing=checkpointing)
        config.method = "qlora"
        config.lora.dropout = 0.0
        runs[checkpointing] = run = RunDir(tmp_path / f"run-{checkpointing}")
        run.root.mkdir()
        save_config(config, run.config_path)
        train(config, run, RunInputs(config, tiny_splits()))

    quantized = [module for module in trainings[0][0].unwrapped.modules() if type(module).__name__ == "Linear4bit"]
    assert quantized and all(module.weight.quant_type == "nf4" and module.weight.compress_statistics
                             for module in quantized)
    assert all("lora_" in name for name, p in trainings[0][0].unwrapped.named_parameters() if p.requires_grad)
    losses = loss_lines(runs[False])
    assert losses[-1] < losses[0]
    assert losses == pytest.approx(loss_lines(runs[True]), abs=1e-3)  # checkpointing: the same training

    run = runs[False]
    export_run(run.config(), run)
    merged = AutoModelForCausalLM.from_pretrained(run.merged).eval()
    assert "quantization_config" not in json.loads((run.merged / "config.json").read_text())
    unmerged, _ = load_tuned_model(run.root, torch.device("cpu"))  # the unquantized base + the adapter, fp32
    tokens = torch.tensor([[1, 40, 77, 150, 9, 300, 2, 64]])
    with torch.no_grad():
        assert torch.allclose(merged(tokens).logits, unmerged(tokens).logits, atol=1e-4)


def test_liger_on_a_cpu_is_a_config_error_before_training(tiny_model_dir, tmp_path, tiny_splits, error_of):
    run = RunDir(tmp_path / "run")
    cfg = tiny_config(tiny_model_dir, max_steps=1, liger=True)
    message = error_of(lambda: train(cfg, run, RunInputs(cfg, tiny_splits())))
    assert message.startswith("config: train.liger: Liger's kernels are Triton GPU kernels, and this run is on the cpu")
    assert not run.metrics.exists()


@pytest.mark.gpu
@pytest.mark.parametrize("method", ["lora", "full"])
@pytest.mark.parametrize("packing", [False, True], ids=["padded", "packed"])
def test_bf16_training_on_a_gpu(cuda, tiny_model_dir, tmp_path, tiny_splits, method, packing):
    """`model.dtype: auto` is bf16 on a GPU that supports it; a few steps and validations give finite losses, with
    whichever attention `auto` picks there."""
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    config = tiny_config(tiny_model_dir, max_steps=6, eval_every=3, packing=packing)
    config.lora.dropout = 0.0
    config.method = method
    run = RunDir(tmp_path / "run")
    summary = train(config, run, RunInputs(config, tiny_splits()))
    assert summary["device"].startswith("cuda") and summary["dtype"] == "bfloat16"
    losses = [line["loss"] for line in metric_lines(run) if "loss" in line]
    assert len(losses) == 6 and all(math.isfinite(loss) for loss in losses)
    assert math.isfinite(summary["best_val_loss"])
