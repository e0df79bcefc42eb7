"""What may change after a run started, as the schema's markers say: the kernels that compute the model
(`model.attention`, `train.liger`) are the machine's choice, so a resume may change them and a command on a run
folder may change the attention; the run's fingerprint ignores them. Every key is classified as it was when the
sets were kept by hand."""

from __future__ import annotations

import typing

import pytest

from tunesmith.config import RunConfig, changes, validate_config
from tunesmith.config.changes import fingerprint, resumed_config, run_folder_config
from tunesmith.config.section import section_type
from tunesmith.errors import ConfigError

SAVED = {"data": {"train": "a.jsonl"}, "model": {"attention": "flash_attention_2"}, "train": {"liger": True}}
ON_A_CPU = {"data": {"train": "a.jsonl"}, "model": {"attention": "auto"}, "train": {"liger": False}}


def test_a_resume_may_change_the_kernels_and_the_fingerprint_ignores_them():
    saved, requested = validate_config(SAVED), validate_config(ON_A_CPU)
    config, applied = resumed_config(saved, requested, "runs/exp")
    assert config == requested
    assert applied == [("model.attention", "flash_attention_2", "auto"), ("train.liger", True, False)]
    assert fingerprint(saved) == fingerprint(requested)


def test_a_run_folder_command_may_change_the_attention_only():
    saved = validate_config(SAVED)
    attention_only = validate_config({**SAVED, "model": {"attention": "sdpa"}})
    assert run_folder_config(saved, attention_only) == attention_only
    with pytest.raises(ConfigError, match="train.liger: is fixed in a trained run"):
        run_folder_config(saved, validate_config(ON_A_CPU))


def test_monitor_thresholds_may_change_on_resume_and_do_not_change_the_fingerprint():
    saved = validate_config(SAVED)
    stricter = validate_config({**SAVED, "monitor": {"max_error_rate": 0.01, "max_p95_latency_s": 2.0}})
    config, applied = resumed_config(saved, stricter, "runs/exp")
    assert config == stricter and [key for key, _, _ in applied] == ["monitor.max_error_rate",
                                                                      "monitor.max_p95_latency_s"]
    assert fingerprint(saved) == fingerprint(stricter)


# What a resume and a command on a run folder may change, as it was kept by hand before the schema's markers said it.
# A new or moved marker changes these sets on purpose: say so here.
RESUMABLE_KEYS = {
    "train.max_steps", "train.epochs", "train.eval_every", "train.save_every", "train.keep_checkpoints",
    "train.early_stopping_patience", "train.threads", "train.report_to", "train.on_nonfinite", "train.compile",
    "train.val_metrics",
    "train.val_metrics_rows", "train.gradient_checkpointing", "model.offline", "data.num_proc", "data.cache",
    "data.check.", "evaluate.", "output.", "distributed.", "model.attention", "train.liger", "monitor.", "review.",
    "serve.", "gate.", "sweep.", "train.batch_size", "train.grad_accumulation",
}
RUN_FOLDER_KEYS = {"evaluate.", "model.attention", "review.", "serve.", "gate."}


def _pinned(key: str, rules: set[str]) -> bool:
    return any(key == rule or (rule.endswith(".") and key.startswith(rule)) for rule in rules)


def schema_keys(model=RunConfig, prefix: str = "") -> list[str]:
    """Every key of the schema: sections (an optional one's own key is what `changes.flat` gives when it is null),
    settings, and an entry of each setting, as a mapping setting (`data.columns`, `sweep.params`) flattens."""
    keys = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        section = section_type(field.annotation)
        mapping = typing.get_origin(field.annotation) is dict
        keys += [key, *(schema_keys(section, f"{key}.") if section else [f"{key}.entry"] if mapping else [])]
    return keys


def test_the_schema_marks_what_was_kept_by_hand():
    assert set(changes.RESUMABLE) == RESUMABLE_KEYS
    assert set(changes.RUN_FOLDER_SETTINGS) == RUN_FOLDER_KEYS


def test_every_key_of_the_schema_is_classified_as_it_was():
    keys = schema_keys()
    assert len(keys) > 100 and "sweep" in keys and "sweep.params.entry" in keys
    assert [key for key in keys if changes.resumable(key) != _pinned(key, RESUMABLE_KEYS)] == []
    assert [key for key in keys if changes.run_folder_setting(key) != _pinned(key, RUN_FOLDER_KEYS)] == []


def test_a_run_folder_setting_is_resumable_too():
    assert all(changes.resumable(key) for key in schema_keys() if changes.run_folder_setting(key))
