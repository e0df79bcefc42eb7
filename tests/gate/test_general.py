"""The general-ability measurement (`tunesmith.gate.general`) and the shipped general prompts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tomllib

from tunesmith.config.gate_section import GateConfig
from tunesmith.errors import ConfigError
from tunesmith.gate.checks import general_check
from tunesmith.gate.general import GENERAL_PROMPTS, general_ability, general_examples

FIELDS = {"rows", "rows_requested", "rows_too_long", "tokens", "base_loss", "tuned_loss", "loss_delta",
          "loss_delta_interval", "kept", "kept_interval", "agreement", "agreement_interval", "agreement_tokens",
          "base_agreement", "agreement_threshold", "base_from_cache", "base_cache", "source", "lm_eval", "seconds"}


def test_an_untouched_adapter_keeps_everything(general_cache, untouched_adapter_run):
    result = general_ability(untouched_adapter_run.config(), untouched_adapter_run)
    assert set(result) == FIELDS
    assert result["rows"] == 8 and result["rows_too_long"] == 0 and result["base_from_cache"] is False
    assert result["tuned_loss"] == pytest.approx(result["base_loss"], abs=1e-5)
    assert result["kept"] == pytest.approx(1.0, abs=1e-5)
    assert result["kept_interval"][0] <= result["kept"] <= result["kept_interval"][1]
    assert result["agreement"] == result["base_agreement"] == 1.0
    assert result["agreement_tokens"] == 8 * 6
    assert result["lm_eval"] is None
    json.dumps(result, allow_nan=False)  # plain numbers, as gate.json holds them


def test_a_run_without_a_gate_section_is_measured_with_the_defaults(general_cache, untouched_adapter_run):
    config = untouched_adapter_run.config()
    config.gate = None  # `tunesmith gate` on a run whose config has no `gate:` section
    result = general_ability(config, untouched_adapter_run)
    assert result["rows_requested"] == GateConfig().general_rows and result["base_from_cache"] is False
    assert result["kept"] == pytest.approx(1.0, abs=1e-5)


def test_an_adapter_trained_to_one_answer_loses_general_ability(general_cache, untouched_adapter_run,
                                                                 one_answer_run):
    untouched = general_ability(untouched_adapter_run.config(), untouched_adapter_run)
    forgetful = general_ability(one_answer_run.config(), one_answer_run)
    assert forgetful["base_from_cache"] is True  # the same base, prompts and settings
    assert forgetful["base_loss"] == untouched["base_loss"]
    assert forgetful["agreement"] < 0.3 < untouched["agreement"]
    assert forgetful["agreement_interval"][1] < untouched["agreement_interval"][0]
    assert forgetful["kept"] < 0.5 and forgetful["kept_interval"][1] < 0.9
    assert forgetful["loss_delta_interval"][0] > 0
    # The gate judges these very dicts: the forgetful adapter fails the check, the untouched one passes it.
    settings = GateConfig()
    assert general_check(forgetful, settings)["status"] == "failed"
    assert general_check(untouched, settings)["status"] == "passed"
    assert general_check(untouched, settings)["threshold"] == settings.min_general_kept


def test_the_base_numbers_come_from_the_cache_the_second_time(general_cache, one_answer_run):
    first = general_ability(one_answer_run.config(), one_answer_run)
    second = general_ability(one_answer_run.config(), one_answer_run)
    assert (first["base_from_cache"], second["base_from_cache"]) == (False, True)
    assert second["base_cache"]["key"] == first["base_cache"]["key"]
    assert list(general_cache.glob("eval/*/entry.json"))
    for name in ("base_loss", "tuned_loss", "kept", "kept_interval", "agreement", "agreement_interval"):
        assert second[name] == first[name]


def test_a_full_fine_tune_is_compared_with_its_base_loaded_apart(general_cache, nudged_full_run):
    first = general_ability(nudged_full_run.config(), nudged_full_run)
    assert first["base_agreement"] == 1.0 and first["base_from_cache"] is False
    assert first["agreement"] < 1.0 and first["kept"] < 1.0
    second = general_ability(nudged_full_run.config(), nudged_full_run)
    assert second["base_from_cache"] is True and second["kept"] == first["kept"]


def test_the_interval_follows_the_seed_and_confidence(general_cache, one_answer_run):
    from tunesmith.config import apply_overrides, validate_config

    config = one_answer_run.config()
    again = general_ability(config, one_answer_run)
    assert general_ability(config, one_answer_run)["kept_interval"] == again["kept_interval"]
    wider = validate_config(apply_overrides(config.model_dump(mode="json"), ["gate.confidence=0.99"]))
    low, high = general_ability(wider, one_answer_run)["kept_interval"]
    assert low <= again["kept_interval"][0] and high >= again["kept_interval"][1]


def test_lm_eval_scores_join_the_measurement_when_tasks_are_named(general_cache, one_answer_run, monkeypatch):
    from tunesmith.config import apply_overrides, validate_config

    scores = {"tasks": {"tiny": {"metric": "acc", "base": 0.5, "tuned": 0.5, "kept": 1.0}}, "threshold": 0.9}
    monkeypatch.setattr("tunesmith.gate.general.lm_eval_scores", lambda config, run: scores)
    config = validate_config(apply_overrides(one_answer_run.config().model_dump(mode="json"),
                                             ['gate.lm_eval_tasks=["tiny"]']))
    assert general_ability(config, one_answer_run)["lm_eval"] == scores


def test_zero_rows_is_not_a_measurement(general_cache, one_answer_run):
    from tunesmith.config import apply_overrides, validate_config

    config = validate_config(apply_overrides(one_answer_run.config().model_dump(mode="json"), ["gate.general_rows=0"]))
    with pytest.raises(ConfigError, match="gate.general_rows"):
        general_ability(config, one_answer_run)


def test_the_shipped_prompts_are_distinct_and_licensed():
    rows = [json.loads(line) for line in GENERAL_PROMPTS.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 249
    prompts = [json.dumps(row["messages"][:-1]) for row in rows]
    assert len(set(prompts)) == len(rows)
    assert all(row["messages"][-1]["role"] == "assistant" and row["messages"][-1]["content"] for row in rows)
    assert sum(row["top_ranked"] for row in rows) == 144
    licence = GENERAL_PROMPTS.with_name("general_prompts.LICENSE.md").read_text(encoding="utf-8")
    assert "Apache License 2.0" in licence and "LAION-AI/Open-Assistant" in licence
    assert len(general_examples(10_000)) == 249 and general_examples(3)[0].location == "general_prompts.jsonl:1"


def test_the_prompts_and_their_licence_are_package_data():
    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = pyproject["tool"]["setuptools"]["package-data"]["tunesmith.gate"]
    assert {"general_prompts.jsonl", "general_prompts.LICENSE.md"} <= set(shipped)


def test_the_shipped_prompts_are_rebuilt_from_the_oasst_file(shared_data):
    """The conversion general_prompts.LICENSE.md describes, applied to chat_oasst_en.jsonl, gives the file."""
    conversations = [json.loads(line) for line in (shared_data / "chat_oasst_en.jsonl").read_text("utf-8").splitlines()]
    rows: dict[str, dict] = {}
    for conversation in conversations:
        messages = conversation["messages"]
        for turn in range(0, len(messages), 2):
            prompt = json.dumps(messages[: turn + 1])
            if prompt in rows:
                rows[prompt]["top_ranked"] |= conversation["top_ranked"]
                continue
            rows[prompt] = {"id": f"{conversation['id']}:{turn}", "messages": messages[: turn + 2],
                            "top_ranked": conversation["top_ranked"]}
    rebuilt = sorted(rows.values(), key=lambda row: len(row["messages"]) > 2)  # openings first, stable
    shipped = [json.loads(line) for line in GENERAL_PROMPTS.read_text(encoding="utf-8").splitlines()]
    assert shipped == rebuilt


def test_a_damaged_cache_entry_is_measured_again(general_cache, one_answer_run, caplog):
    first = general_ability(one_answer_run.config(), one_answer_run)
    (general_cache / "eval" / first["base_cache"]["key"] / "predictions.jsonl").write_text("{cut", encoding="utf-8")
    again = general_ability(one_answer_run.config(), one_answer_run)
    assert again["base_from_cache"] is False and "damaged cached base-model evaluation" in caplog.text
    assert (again["base_loss"], again["kept"], again["agreement"]) == (first["base_loss"], first["kept"],
                                                                       first["agreement"])
