"""Tiny run folders as training leaves them: a config and a best checkpoint (LoRA or DoRA adapter, or full
model)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tunesmith.config import save_config, validate_config
from tunesmith.run_dir import RunDir

TINY_LORA = {"r": 4, "alpha": 8.0, "dropout": 0.0, "target_modules": ["q_proj", "v_proj", "o_proj", "down_proj"]}


def write_config(root: Path, model_dir: Path, method: str) -> RunDir:
    run = RunDir(root)
    root.mkdir(parents=True, exist_ok=True)
    config = validate_config({
        "model": {"name": str(model_dir)}, "data": {"train": "train.jsonl"}, "method": method, "lora": TINY_LORA,
    })
    save_config(config, run.config_path)
    return run


def adapter_run(root: Path, model_dir: Path, method: str) -> Path:
    """A run of an adapter method whose adapter has random, non-zero lora_B, so merging really changes the weights."""
    from transformers import AutoModelForCausalLM

    from tunesmith.models import add_lora

    run = write_config(root, model_dir, method)
    model = add_lora(AutoModelForCausalLM.from_pretrained(model_dir), run.config().lora, dora=method == "dora")
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    model.save_pretrained(run.best)
    return run.root


@pytest.fixture()
def lora_run(tmp_path, tiny_model_dir) -> Path:
    return adapter_run(tmp_path / "lora-run", tiny_model_dir, "lora")


@pytest.fixture()
def dora_run(tmp_path, tiny_model_dir) -> Path:
    return adapter_run(tmp_path / "dora-run", tiny_model_dir, "dora")


@pytest.fixture()
def full_run(tmp_path, tiny_model_dir) -> Path:
    """A full fine-tune run: the best checkpoint is the base with every weight nudged, so it differs from it."""
    from transformers import AutoModelForCausalLM

    run = write_config(tmp_path / "full-run", tiny_model_dir, "full")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    model.save_pretrained(run.best)
    return run.root


@pytest.fixture()
def merged_run(tmp_path, tiny_model_dir, tiny_tokenizer):
    """``merged_run(model, name="merged-run") -> Path``: a run folder whose ``merged/`` export is ``model`` with the
    tiny tokenizer, as `export_run` leaves it: for exports that start from ``merged/`` (GGUF)."""
    def make(model, name: str = "merged-run") -> Path:
        run = write_config(tmp_path / name, tiny_model_dir, "full")
        model.save_pretrained(run.merged)
        tiny_tokenizer.save_pretrained(run.merged)
        return run.root

    return make
