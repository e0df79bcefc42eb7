"""`export_is_stale`: the one rule for whether an export still holds the run's best weights."""

from __future__ import annotations

import os

from tunesmith.results.freshness import export_is_stale


def make(folder, name: str, mtime: float) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text("{}")
    os.utime(folder / name, (mtime, mtime))


def test_an_export_older_than_the_best_weights_is_stale(tmp_path):
    make(tmp_path / "merged", "config.json", 1000)
    make(tmp_path / "best", "adapter_model.safetensors", 2000)
    assert export_is_stale(tmp_path / "best", tmp_path / "merged")
    make(tmp_path / "merged", "config.json", 3000)
    assert not export_is_stale(tmp_path / "best", tmp_path / "merged")


def test_a_model_card_rewritten_later_does_not_freshen_an_export(tmp_path):
    make(tmp_path / "adapter", "adapter_config.json", 1000)
    make(tmp_path / "adapter", "README.md", 3000)  # the gate rewrites the card, not the weights
    make(tmp_path / "best", "adapter_model.safetensors", 2000)
    assert export_is_stale(tmp_path / "best", tmp_path / "adapter")


def test_without_best_weights_or_an_export_nothing_is_stale(tmp_path):
    make(tmp_path / "merged", "config.json", 1000)
    assert not export_is_stale(tmp_path / "best", tmp_path / "merged")  # checkpoints deleted: the export is all
    make(tmp_path / "best", "adapter_model.safetensors", 2000)
    assert not export_is_stale(tmp_path / "best", tmp_path / "nothing")
