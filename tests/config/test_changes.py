"""What may change after a run started: the kernels that compute the model (`model.attention`, `train.liger`)
are the machine's choice, so a resume may change them and a command on a run folder may change the attention; the
run's fingerprint ignores them."""

from __future__ import annotations

import pytest

from tunesmith.config import validate_config
from tunesmith.config.changes import fingerprint, resumed_config, run_folder_config
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
