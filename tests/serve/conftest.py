"""Served runs: a tiny model whose greedy replies vary with the prompt, two classification runs on one base, and
a server on a loopback port."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tunesmith.config import save_config, validate_config
from tunesmith.run_dir import RunDir

SPAM_TEXTS = ["win a free prize now", "see you at lunch", "claim your cash reward today", "are we still meeting?",
              "free entry call now", "bring the notes tomorrow", "WINNER!! you have won", "lunch at noon?"]


def classification_run(root: Path, model_dir: Path, data_dir: Path, seed: int, lora: dict) -> Path:
    """A finished LoRA classification run (spam/ham): data files, data_summary.json and a random non-zero adapter."""
    import json

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    data_dir.mkdir(exist_ok=True)
    rows = [{"text": text, "label": "spam" if i % 2 == 0 else "ham"} for i, text in enumerate(SPAM_TEXTS)]
    for split in ("train", "val", "test"):
        (data_dir / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    run = RunDir(root)
    root.mkdir(parents=True)
    config = validate_config({
        "model": {"name": str(model_dir)}, "method": "lora", "lora": lora,
        "data": {"train": str(data_dir / "train.jsonl"), "validation": str(data_dir / "val.jsonl"),
                 "test": str(data_dir / "test.jsonl"), "system_prompt": "You sort messages."},
        "evaluate": {"batch_size": 3, "compare_base": False},
    })
    save_config(config, run.config_path)
    run.data_summary.write_text(json.dumps({"format": "classification", "labels": ["ham", "spam"]}))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    adapter = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, adapter).save_pretrained(run.best)
    return root


@pytest.fixture()
def spam_runs(tmp_path, chatty_model_dir, tiny_lora) -> tuple[Path, Path]:
    """Two classification runs (different adapters) on one base."""
    return (classification_run(tmp_path / "spam-a", chatty_model_dir, tmp_path / "data", seed=1, lora=tiny_lora),
            classification_run(tmp_path / "spam-b", chatty_model_dir, tmp_path / "data", seed=2, lora=tiny_lora))


