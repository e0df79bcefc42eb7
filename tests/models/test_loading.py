"""Loading a model folder: one loader for every folder (dtype, safetensors only, KV cache off, eval mode)."""

from __future__ import annotations

import pytest
import torch

from tunesmith.config import ModelConfig
from tunesmith.errors import ModelError
from tunesmith.models import load_model_folder, pick_dtype


def test_one_loader_with_the_configured_dtype(tiny_model_dir):
    model = load_model_folder(tiny_model_dir, ModelConfig(name=str(tiny_model_dir)), torch.device("cpu"))
    assert next(model.parameters()).dtype == torch.float32 and not model.training
    assert model.config.use_cache is False  # training does not use it; generation turns it on per call
    half = load_model_folder(tiny_model_dir, ModelConfig(name=str(tiny_model_dir), dtype="bfloat16"),
                             torch.device("cpu"))
    assert next(half.parameters()).dtype == torch.bfloat16
    saved_dtype = load_model_folder(tiny_model_dir, ModelConfig(name=str(tiny_model_dir), dtype="bfloat16"),
                                    torch.device("cpu"), dtype="auto")
    assert next(saved_dtype.parameters()).dtype == torch.float32


def test_auto_dtype_is_fp32_on_cpu():
    assert pick_dtype("auto", torch.device("cpu")) == torch.float32
    assert pick_dtype("float16", torch.device("cpu")) == torch.float16


def test_only_safetensors_weights_are_loaded(tmp_path, tiny_model_dir):
    from tunesmith.models import load_base_model

    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text((tiny_model_dir / "config.json").read_text())
    torch.save({}, folder / "pytorch_model.bin")
    with pytest.raises(ModelError, match="tunesmith loads weights only from safetensors"):
        load_base_model(ModelConfig(name=str(folder)))
