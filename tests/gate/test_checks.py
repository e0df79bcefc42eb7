"""The gate's checks as pure functions: judgments, their sides, subsets, thresholds and the contract's fields."""

from __future__ import annotations

import numpy as np
import pytest

from tunesmith.config.gate_section import GateConfig
from tunesmith.gate.checks import (
    TITLES,
    Paired,
    calibration_check,
    comparison_check,
    export_size_check,
    general_check,
    latency_check,
    preference_check,
    valid_output_check,
)
from tunesmith.gate.stats import metric_statistics, ratio_statistics

TRUTHS = ["ham"] * 150 + ["spam"] * 50


def _paired(tuned_wrong: range, other_wrong: range) -> Paired:
    def answers(wrong):
        return [("spam" if truth == "ham" else "ham") if index in wrong else truth
                for index, truth in enumerate(TRUTHS)]

    tuned, other = answers(tuned_wrong), answers(other_wrong)
    return Paired(metric_statistics("accuracy", TRUTHS, tuned), metric_statistics("accuracy", TRUTHS, other),
                  np.array([a == b for a, b in zip(tuned, TRUTHS)]), np.array([a == b for a, b in zip(other, TRUTHS)]))


def _has_the_contract_fields(check: dict) -> None:
    assert check["title"] == TITLES[check["name"]] and check["status"] in ("passed", "failed", "measured", "skipped")
    assert isinstance(check["reason"], str) and check["reason"]


def test_better_needs_the_whole_interval_above_zero_and_not_worse_above_minus_the_margin():
    settings = GateConfig(margin=0.05)
    close = {"all": _paired(range(0, 10), range(10, 25)), "unleaked": None}
    better = comparison_check("against_base", "base", "the base", close, "better", "accuracy", True, settings)
    not_worse = comparison_check("against_baseline", "tfidf_logreg", "TF-IDF", close, "not_worse", "accuracy", True,
                                 settings)
    for check in (better, not_worse):
        _has_the_contract_fields(check)
    assert better["status"] == "failed" and "required: better" in better["reason"]
    assert not_worse["status"] == "passed" and not_worse["threshold"] == -0.05
    figures = better["subsets"]["all"]
    assert figures["rows"] == 200 and figures["difference"] == pytest.approx(0.025) == better["value"]
    assert figures["interval"][0] <= 0 < figures["interval"][1]
    assert figures["mcnemar"]["tuned_only_right"] == 15 and figures["mcnemar"]["other_only_right"] == 10


def test_a_comparison_passes_only_when_it_passes_on_the_unleaked_rows_too():
    everything = _paired(range(0), range(100, 200))
    # On the first 60 rows (the "unleaked" ones here) both models are right: no difference there.
    pairs = {"all": everything, "unleaked": everything.subset(list(range(60)))}
    check = comparison_check("against_base", "base", "the base", pairs, "better", "accuracy", True, GateConfig())
    assert check["status"] == "failed" and "not met on the unleaked rows" in check["reason"]
    assert check["subsets"]["all"]["interval"][0] > 0 and check["subsets"]["unleaked"]["rows"] == 60


def test_a_lower_is_better_metric_keeps_the_sign_of_the_difference_and_flips_the_judgment():
    truths = [0.0] * 100
    tuned = metric_statistics("mse", truths, ["1"] * 100)
    other = metric_statistics("mse", truths, ["2"] * 100)
    check = comparison_check("against_base", "base", "the base", {"all": Paired(tuned, other), "unleaked": None},
                             "better", "mse", False, GateConfig())
    assert check["status"] == "passed" and check["value"] == -3.0 and check["subsets"]["all"]["mcnemar"] is None
    worse = comparison_check("against_base", "base", "the base", {"all": Paired(other, tuned), "unleaked": None},
                             "not_worse", "mse", False, GateConfig(margin=0.5))
    assert worse["status"] == "failed" and worse["threshold"] == 0.5


def _points(drop: float) -> dict[str, Paired | None]:
    """Scores in points (0–100, as BLEU is reported) of 200 rows: the tuned model ``drop`` points below the other
    on every row, give or take 0.1."""
    rows = np.arange(200)
    other = 30.0 + rows % 7
    tuned = other - drop + np.where(rows % 2, 0.1, -0.1)
    ones = np.ones(len(rows))
    return {"all": Paired(ratio_statistics(tuned, ones), ratio_statistics(other, ones)), "unleaked": None}


def test_the_margin_is_stated_on_a_0_1_scale_and_read_in_bleu_points():
    settings = GateConfig()  # margin 0.01: 1 BLEU point, as it is 1 point of accuracy
    slight = comparison_check("against_baseline", "base", "the base", _points(0.5), "not_worse", "bleu", True, settings)
    assert slight["status"] == "passed" and slight["threshold"] == -1.0
    assert slight["value"] == pytest.approx(-0.5)
    assert slight["reason"].endswith("required: not worse (the interval above -1, gate.margin 0.01 = 1 bleu)")
    clear = comparison_check("against_baseline", "base", "the base", _points(2.0), "not_worse", "bleu", True, settings)
    assert clear["status"] == "failed" and clear["threshold"] == -1.0
    assert clear["subsets"]["all"]["interval"][1] < -1
    accuracy = comparison_check("against_baseline", "tfidf_logreg", "TF-IDF",
                                {"all": _paired(range(0, 12), range(10, 20)), "unleaked": None}, "not_worse",
                                "accuracy", True, settings)
    assert accuracy["threshold"] == -0.01  # accuracy is on 0–1: the margin as stated
    assert "required: not worse (the interval above -0.01, gate.margin)" in accuracy["reason"]


def test_off_skips_a_comparison():
    pairs = {"all": _paired(range(1), range(2)), "unleaked": None}
    check = comparison_check("against_previous", "old", "old", pairs, "off", "accuracy", True, GateConfig())
    assert check["status"] == "skipped" and check["reason"] == "gate.against_previous is off"


def test_calibration_is_judged_after_temperature_scaling_and_skipped_where_there_is_none():
    calibration = {"temperature": 0.9, "before": {"ece": 0.2}, "after": {"ece": 0.06, "ece_interval": [0.04, 0.08],
                                                                         "rows": 300}}
    failed = calibration_check("classification", calibration, GateConfig(max_ece=0.05))
    assert failed["status"] == "failed" and failed["value"] == 0.06 and failed["rows"] == 300
    assert calibration_check("classification", calibration, GateConfig(max_ece=None))["status"] == "measured"
    for task, measured in [("generation", None), ("classification", {"skipped": "generate mode"})]:
        skipped = calibration_check(task, measured, GateConfig())
        _has_the_contract_fields(skipped)
        assert skipped["status"] == "skipped"


def test_valid_output_counts_answers_and_shows_the_invalid_ones():
    answers = ["ham", "spam", "I think it is spam", "ham"]
    check = valid_output_check("classification", ["ham", "spam"], answers, ["f:1", "f:2", "f:3", "f:4"], None,
                               GateConfig(min_valid_output=0.9))
    assert check["status"] == "failed" and check["value"] == 0.75 and check["invalid"] == 1
    assert check["examples"] == [{"location": "f:3", "answer": "I think it is spam"}]
    schema = {"type": "object", "required": ["name"]}
    json_answers = ['{"name": "x"}', '{"other": 1}', "not json"]
    check = valid_output_check("generation", None, json_answers, ["a", "b", "c"], schema, GateConfig())
    assert check["rule"] == "matches evaluate.output_schema" and check["invalid"] == 2
    assert valid_output_check("generation", None, json_answers, ["a", "b", "c"], None, GateConfig())["status"] == \
        "skipped"
    assert valid_output_check("regression", None, ["3.5", "n/a"], ["a", "b"], None, GateConfig())["value"] == 0.5


MEASURED = {"rows": 200, "tokens": 5000, "base_loss": 2.0, "tuned_loss": 2.4, "loss_delta": 0.4,
            "loss_delta_interval": [0.3, 0.5], "kept": 0.67, "kept_interval": [0.6, 0.74], "agreement": 0.5,
            "agreement_interval": [0.45, 0.55], "base_from_cache": False, "source": "shipped prompts",
            "lm_eval": {"tasks": {"arc": {"metric": "acc", "base": 0.5, "tuned": 0.3, "kept": 0.6, "rows": 10}}}}


def test_general_ability_is_judged_on_every_threshold_set():
    check = general_check(MEASURED, GateConfig(min_general_kept=0.5, min_general_agreement=0.6, min_lm_eval_kept=0.9))
    _has_the_contract_fields(check)
    assert check["status"] == "failed" and check["value"] == 0.67 and check["threshold"] == 0.5
    assert "gate.min_general_agreement" in check["reason"] and "lm-eval arc" in check["reason"]
    assert check["lm_eval"]["threshold"] == 0.9 and check["agreement_threshold"] == 0.6
    unjudged = general_check(MEASURED, GateConfig(min_general_kept=None, min_lm_eval_kept=None))
    assert unjudged["status"] == "measured"
    assert general_check(None, GateConfig(general_rows=0))["status"] == "skipped"


def test_latency_and_export_size_are_measured_without_a_threshold_and_judged_with_one():
    seconds = [0.1] * 17 + [1.0] * 3
    assert latency_check(seconds, "cpu", GateConfig())["status"] == "measured"
    judged = latency_check(seconds, "cpu", GateConfig(max_p95_latency_s=0.5))
    assert judged["status"] == "failed" and judged["p50"] == pytest.approx(0.1) and judged["requests"] == 20
    assert latency_check([], None, GateConfig(latency_rows=0))["status"] == "skipped"
    sizes = {"adapter": 7.0, "merged": 270.0}
    assert export_size_check(sizes, "adapter", GateConfig(max_export_mb=10))["status"] == "passed"
    assert export_size_check(sizes, "merged", GateConfig(max_export_mb=10))["status"] == "failed"


# ---- a preference run: its ranking of the held-out pairs against its reference's, pair by pair -------------------


def _pairs(tuned_right: int, reference_right: int, rows: int = 200) -> tuple[dict, list[dict]]:
    lines = [{"margin": 1.0 if index < tuned_right else -1.0,
              "reference_margin": 2.0 if index < reference_right else -2.0} for index in range(rows)]
    return {"pairs": rows, "tuned": {"accuracy": tuned_right / rows}}, lines


def test_preference_accuracy_passes_only_above_the_references_ranking():
    settings = GateConfig(resamples=500)
    better = preference_check(*_pairs(160, 110), settings)
    _has_the_contract_fields(better)
    assert better["status"] == "passed" and better["value"] == pytest.approx(0.25)
    assert better["reason"].startswith("preference accuracy +0.25 [") and "over the reference's ranking on 200 rows" \
        in better["reason"] and "McNemar" in better["reason"]
    same = preference_check(*_pairs(110, 110), settings)
    assert same["status"] == "failed" and same["reason"].endswith("required: better (the interval above 0) (not met "
                                                                  "on every row)")
    assert preference_check(*_pairs(108, 110), GateConfig(resamples=500, preference_accuracy="not_worse",
                                                          margin=0.1))["status"] == "passed"


def test_preference_accuracy_unmeasured_fails_and_off_skips():
    settings = GateConfig(resamples=500)
    unmeasured = preference_check({"skipped": "the run's test split has no preference pairs"}, None, settings)
    assert unmeasured["status"] == "failed"
    assert unmeasured["reason"] == ("not measured: the run's test split has no preference pairs (or set "
                                    "gate.preference_accuracy: off)")
    block, lines = _pairs(160, 110)
    assert preference_check(block, lines[:-1], settings)["reason"].startswith(
        "preference_pairs.jsonl does not hold the evaluated pairs")
    off = preference_check(block, lines, GateConfig(preference_accuracy=False))  # YAML's bare `off`
    assert off["status"] == "skipped" and off["reason"] == "gate.preference_accuracy is off"
