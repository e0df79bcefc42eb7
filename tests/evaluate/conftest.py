"""Fixtures of the evaluate tests."""

from __future__ import annotations

import pytest

from tunesmith.config import DataConfig, EvaluateConfig, ModelConfig, RunConfig, save_config
from tunesmith.run_dir import RunDir


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

