"""How a gate.json is shown (`tunesmith.results.gate`): its state in one word, the checks table, the comparisons of
a metric where lower is better, and the general-ability sentence."""

from __future__ import annotations

import json

from tunesmith.document import text_table
from tunesmith.results.gate import (
    checks_table,
    comparisons_table,
    gate_state,
    general_ability_text,
    lm_eval_table,
)


def test_the_state_of_a_run_folder_is_one_word_and_a_line(tmp_path, gate_example):
    (tmp_path / "eval.json").write_text(json.dumps({"task": "classification"}))
    assert gate_state(tmp_path) == ("not gated", None, "not gated: run `tunesmith gate RUN`")
    gate = gate_example(tmp_path, failed=("calibration",))
    state, read, line = gate_state(tmp_path)
    assert (state, read) == ("failed", gate) and line.startswith("gate failed: calibration (")
    gate_example(tmp_path)
    assert gate_state(tmp_path)[0] == "passed"
    (tmp_path / "eval.json").write_text(json.dumps({"task": "classification", "again": True}))
    state, _, line = gate_state(tmp_path)
    assert state == "stale" and line.startswith("stale: gate passed (5 checks passed, 2 measured only or skipped)")


def test_a_lower_is_better_metric_keeps_the_difference_as_tuned_minus_other(gate_example):
    gate = gate_example(metric="mse", higher_is_better=False)
    base = gate["checks"][0]
    base |= {"value": -0.31, "subsets": {"all": {"rows": 50, "tuned": 0.12, "other": 0.43, "difference": -0.31,
                                                 "interval": [-0.4, -0.22], "mcnemar": None}, "unleaked": None}}
    gate["checks"] = [base]
    table = comparisons_table(gate)
    assert table.caption.startswith("mse of the tuned model against each other model (difference: tuned − other; "
                                    "lower is better)")
    assert table.rows == [["base", "all test rows", "50", "0.1200", "0.4300", "-0.3100", "[-0.4000, -0.2200]", "–"]]
    assert checks_table(gate).rows[0][:6] == ["beats the base model (against_base)", "passed", "mse -0.3100",
                                              "[-0.4000, -0.2200]", "better than base: interval below 0", "50 all"]


def test_every_check_is_a_row_of_the_table(gate_example):
    lines = text_table(checks_table(gate_example()))
    header = [cell.strip() for cell in lines[1].split(" | ")]
    assert len(lines) == 3 + 7 and header == ["check", "status", "value", "95% interval", "required", "rows", "reason"]


def test_the_general_ability_sentence(gate_example):
    check = next(check for check in gate_example()["checks"] if check["name"] == "general_ability")
    check["agreement_threshold"] = 0.8
    assert general_ability_text(check) == (
        "The tuned model keeps 97.0% [95.0%, 99.0%] of the base model's general ability: its loss on the reference "
        "answers of 200 general prompts (12,345 tokens) went from 2.1000 (base) to 2.1300 (+0.0300, interval "
        "[+0.0100, +0.0500]), and it predicts 88.0% [86.0%, 90.0%] of the base's greedy answer tokens; required: "
        "keeps at least 90.0% and agrees on at least 80.0% (passed).")
    check |= {"threshold": None, "agreement_threshold": None, "status": "measured"}
    assert general_ability_text(check).endswith("greedy answer tokens (measured only).")


def test_lm_eval_tasks_with_each_model_s_standard_error(gate_example):
    check = next(check for check in gate_example()["checks"] if check["name"] == "general_ability")
    check["lm_eval"]["tasks"]["arc_tiny"] |= {"stderr": {"base": 0.05, "tuned": 0.049}}
    check["lm_eval"]["tasks"]["zero_base"] = {"metric": "acc", "base": 0.0, "tuned": 0.1, "kept": None, "rows": 10}
    assert lm_eval_table(check).rows == [["arc_tiny", "acc", "0.5000", "0.4800", "96.0%", "0.0500 / 0.0490", "100"],
                                         ["zero_base", "acc", "0.0000", "0.1000", "–", "not available", "10"]]


def test_a_preference_runs_checks_read_as_paired_comparisons_of_their_own_units(gate_example):
    gate = gate_example(metric="mse", higher_is_better=False)
    base = gate["checks"][0]
    pairs = {"all": {"rows": 120, "tuned": 0.8, "other": 0.55, "difference": 0.25, "interval": [0.15, 0.35],
                     "mcnemar": {"p_value": 1e-6, "tuned_only_right": 34, "other_only_right": 4}}}
    gate["checks"] = [
        base | {"name": "against_init_from", "title": "keeps the task of the run it continues from",
                "requirement": "not_worse", "threshold": 0.01, "other": "base", "value": 0.002,
                "subsets": {"all": {**base["subsets"]["all"], "difference": 0.002}, "unleaked": None}},
        {"name": "preference_accuracy", "title": "ranks held-out pairs better than its reference",
         "status": "passed", "reason": "r", "requirement": "better", "threshold": 0.0, "other": "reference",
         "value": 0.25, "subsets": pairs}]
    rows = checks_table(gate).rows
    assert rows[0][2] == "mse +0.0020" and rows[0][4] == "not worse than base: interval below +0.0100"
    # Preference accuracy is higher-is-better whatever the task metric is.
    assert rows[1][2:6] == ["preference accuracy +0.2500", "[+0.1500, +0.3500]", "better than reference: interval "
                            "above 0", "120 all"]
    assert [row[0] for row in comparisons_table(gate).rows] == ["base"]  # the task metric's table only
