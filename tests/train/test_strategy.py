"""The `distributed:` strategies: what each needs is checked before anything loads, with an error naming the
key. FSDP across GPUs runs on a machine with 2 or more (`pytest -m gpu`); this CPU suite runs DDP (see
tests/test_distributed.py)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest
import torch
import yaml

from tunesmith.config import validate_config
from tunesmith.data.run_inputs import RunInputs
from tunesmith.run_dir import RunDir
from tunesmith.train import train
from tunesmith.train.strategy import check_strategy


def config_with(strategy: str, **train_settings):
    return validate_config({"model": {"name": "no/such-model-is-loaded"}, "data": {"train": "unused.jsonl"},
                            "distributed": {"strategy": strategy}, "train": train_settings})


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU-only error")
def test_fsdp_without_a_gpu_is_an_error_before_anything_loads(tmp_path, tiny_splits, error_of):
    cfg = config_with("fsdp")
    message = error_of(lambda: train(cfg, RunDir(tmp_path / "run"), RunInputs(cfg, tiny_splits())))
    assert message.startswith("config: distributed.strategy: fsdp shards the model across GPUs")
    assert "use distributed.strategy: ddp on CPU" in message


def test_deepspeed_not_installed_is_named(monkeypatch, error_of):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "deepspeed" else real(name, *a))
    message = error_of(lambda: check_strategy(config_with("deepspeed")))
    assert message == ("config: distributed.strategy: deepspeed is not installed (pip install deepspeed, or use "
                       "distributed.strategy: fsdp or ddp)")


def test_deepspeed_cannot_skip_non_finite_steps(monkeypatch, error_of):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    message = error_of(lambda: check_strategy(config_with("deepspeed", on_nonfinite="skip")))
    assert message.startswith("config: train.on_nonfinite: skip cannot work under deepspeed")


def test_ddp_needs_nothing():
    check_strategy(config_with("ddp"))


def test_an_unknown_strategy_names_the_choices(error_of):
    message = error_of(lambda: config_with("horovod"))
    assert "distributed.strategy" in message and "'ddp', 'fsdp' or 'deepspeed'" in message


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="FSDP across processes needs 2 or more CUDA GPUs")
def test_fsdp_on_two_gpus_trains_what_ddp_trains(tmp_path, tiny_model_dir, spam_rows, write_jsonl):
    """Full fine-tuning sharded by FSDP (bf16 off: fp32 on both) ends at the weights DDP ends at."""
    write_jsonl(tmp_path / "train.jsonl", spam_rows(24))
    config = {"model": {"name": str(tiny_model_dir), "dtype": "float32"}, "method": "full",
              "data": {"train": "train.jsonl", "max_length": 96, "split": {"validation": 0.2, "test": 0.0}},
              "train": {"max_steps": 4, "batch_size": 4, "learning_rate": 1e-3, "scheduler": "constant",
                        "warmup_ratio": 0.0, "save_every": 4, "eval_every": 4}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    for strategy in ("ddp", "fsdp"):
        subprocess.run([sys.executable, "-m", "tunesmith", "train", str(tmp_path / "config.yaml"), "--run-dir",
                        str(tmp_path / strategy), "--processes", "2", "--set", f"distributed.strategy={strategy}"],
                       check=True, timeout=600)
    from safetensors.torch import load_file

    ddp = load_file(tmp_path / "ddp" / "checkpoints" / "step-000004" / "weights" / "model.safetensors")
    fsdp = load_file(tmp_path / "fsdp" / "checkpoints" / "step-000004" / "weights" / "model.safetensors")
    for name, tensor in ddp.items():
        assert torch.allclose(tensor, fsdp[name], atol=1e-5), name
