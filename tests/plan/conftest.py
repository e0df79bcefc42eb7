"""A tiny project to plan: the tiny random model, 24 spam/ham rows, the reliability scenarios' settings."""

from __future__ import annotations

import pytest
import yaml

SETTINGS = {
    "data": {"path": "data.jsonl", "split": {"validation": 0.25, "test": 0.25}, "max_length": 256},
    "lora": {"r": 2, "alpha": 4, "target_modules": ["q_proj", "v_proj"]},
    "train": {"max_steps": 4, "batch_size": 4, "eval_every": 2, "save_every": 2, "keep_checkpoints": 5,
              "warmup_ratio": 0.0, "learning_rate": 1e-2},
    "evaluate": {"batch_size": 4, "num_examples": 2},
}


@pytest.fixture()
def plan_project(tmp_path, tiny_model_dir, spam_rows, write_jsonl, monkeypatch):
    """``plan_project(**train_settings)``: a folder with `config.yaml` and `data.jsonl` as the working
    directory; returns the config's path."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    write_jsonl(tmp_path / "data.jsonl", spam_rows(24))

    def make(**train) -> str:
        config = {"model": {"name": str(tiny_model_dir)}, **SETTINGS}
        config["train"] = {**SETTINGS["train"], **train}
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        return str(tmp_path / "config.yaml")

    return make
