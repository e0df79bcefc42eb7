"""Preference training refused in one line, before any model loads: a preference method on rows without a
rejected answer, and settings a preference method cannot train with (`data.streaming`, ORPO's label smoothing and
imitation term), each naming its key."""

from __future__ import annotations

import pytest


def test_a_preference_method_on_supervised_rows_names_method(project, cli, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("tunesmith.train.recipe.load_training_model", refuse)
    code, _, error = cli("train", "config.yaml", "--set", "output.name=exp", "--set", "method=dpo")
    assert code == 2 and error == (
        "tunesmith: error: config: method: dpo trains on preference pairs (prompt, chosen, rejected), and the data's "
        "rows are classification rows (give data.format: preference rows, or use method: lora for supervised "
        "fine-tuning)")
    assert not (project / "runs" / "exp" / "checkpoints").exists()


@pytest.mark.parametrize(("settings", "key"), [
    (("method=orpo", "preference.sft_weight=0.5"), "preference.sft_weight"),
    (("method=dpo", "data.streaming=true"), "data.streaming"),
    (("method=orpo", "preference.label_smoothing=0.1"), "preference.label_smoothing"),
])
def test_settings_a_preference_method_cannot_train_with_name_their_key(project, cli, settings, key):
    code, _, error = cli("train", "config.yaml", *[arg for setting in settings for arg in ("--set", setting)])
    assert code == 2 and error.startswith(f"tunesmith: error: config: {key}: ") and "\n" not in error
