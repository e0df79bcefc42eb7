"""Fixtures of the evaluate tests."""

from __future__ import annotations

import pytest
import torch

from tunesmith.config import DataConfig, EvaluateConfig, ModelConfig, RunConfig, save_config
from tunesmith.run_dir import RunDir


@pytest.fixture()
def chatty_model(tiny_model):
    """The tiny Llama with large random weights.

    The stock init (std 0.02, tied embeddings) makes greedy decoding repeat the prompt's last token forever and
    gives every label nearly the same score; larger weights give varied replies and well-separated scores, so
    batching or caching mistakes change the result.
    """
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in tiny_model.parameters():
            if parameter.ndim == 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return tiny_model


@pytest.fixture()
def run_folder(tmp_path, tiny_model_dir, tiny_model, write_jsonl):
    """A finished lora run: config.yaml, classification data files and a non-zero LoRA adapter as best."""
    from peft import LoraConfig, get_peft_model

    train = [{"text": "free prize call now", "label": "spam"}, {"text": "see you at lunch", "label": "ham"}]
    test = [
        {"text": "WINNER!! claim your cash", "label": "spam"}, {"text": "are we still meeting?", "label": "ham"},
        {"text": "free cash reward", "label": "spam"},
    ]
    data = DataConfig(
        train=write_jsonl(tmp_path / "train.jsonl", train), validation=write_jsonl(tmp_path / "val.jsonl", train),
        test=write_jsonl(tmp_path / "test.jsonl", test),
    )
    config = RunConfig(
        model=ModelConfig(name=str(tiny_model_dir)), data=data, method="lora",
        evaluate=EvaluateConfig(batch_size=2, max_new_tokens=4),
    )
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    save_config(config, run.config_path)
    adapter = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(tiny_model, adapter).save_pretrained(run.best)
    return run
