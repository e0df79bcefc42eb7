"""A tiny sweep: the tiny Llama, spam/ham rows, a few optimizer steps per trial with a validation at every step."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml


@pytest.fixture()
def sweep_config(tmp_path, tiny_model_dir, spam_rows, write_jsonl):
    """``sweep_config(params, **sweep) -> path`` of a config whose sweep searches ``params``."""
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "train.jsonl", spam_rows(24))
    write_jsonl(data / "val.jsonl", spam_rows(8))
    write_jsonl(data / "test.jsonl", spam_rows(6))

    def make(params: dict, name: str = "sweep.yaml", **sweep) -> Path:
        config = {
            "model": {"name": str(tiny_model_dir)}, "method": "lora",
            "lora": {"r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj"]},
            "data": {"train": "data/train.jsonl", "validation": "data/val.jsonl", "test": "data/test.jsonl",
                     "max_length": 128},
            "train": {"max_steps": 3, "batch_size": 4, "eval_every": 1, "save_every": 1, "learning_rate": 1e-2},
            "evaluate": {"batch_size": 8, "num_examples": 2},
            "output": {"dir": str(tmp_path / "runs")},
            "sweep": {"trials": 3, "params": params, **sweep},
        }
        path = tmp_path / name
        path.write_text(yaml.safe_dump(config))
        return path

    return make
