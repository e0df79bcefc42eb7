"""The verdict section: headline metrics base → tuned (and on unleaked rows), and the warnings."""

from __future__ import annotations

import pytest

from tunesmith.config import validate_config
from tunesmith.document import Facts, Table, Text
from tunesmith.report.summary import (
    headline_table,
    summary_section,
    verdict,
    verdict_sentences,
    verdict_title,
    warnings,
)

EVAL = {
    "task": "classification", "num_examples": 1000,
    "base": {"accuracy": 0.719, "f1": 0.451, "precision": 0.5, "loss": 7.377},
    "tuned": {"accuracy": 0.983, "f1": 0.965, "precision": 0.9, "loss": 0.025},
    "leakage": {"checked": True, "leaked_rows": 59, "locations": []},
    "unleaked": {"num_examples": 941, "base": {"accuracy": 0.7}, "tuned": {"accuracy": 0.98}},
}


def test_headline_keeps_the_task_s_main_metrics():
    assert [row[0] for row in headline_table(EVAL).rows] == ["accuracy", "f1", "loss"]


def test_verdict_names_base_tuned_delta_and_the_unleaked_rows():
    assert verdict(EVAL) == (
        "Verdict: good (beats base +0.2640). accuracy: base 0.7190 → tuned 0.9830 (+0.2640) on 1,000 test rows; on "
        "the 941 rows not leaked from train: base 0.7000 → tuned 0.9800 (+0.2800).")
    no_base = {**EVAL, "base": None, "unleaked": None}
    assert verdict(no_base) == ("Verdict: good (accuracy 0.9830). accuracy of the tuned model: 0.9830 on 1,000 test "
                                "rows (the base model was not evaluated).")


def test_verdict_flags_a_degenerate_run_and_names_the_gate():
    """The run of the issue: "ham" to every one of 80 messages, +0.15 over its base, equal to the majority."""
    degenerate = {"task": "classification", "num_examples": 80, "base": {"accuracy": 0.6625},
                  "tuned": {"accuracy": 0.8125, "confusion_matrix": {"labels": ["ham", "spam"],
                                                                     "matrix": [[65, 0], [15, 0]]}},
                  "baselines": {"majority": {"accuracy": 0.8125}, "tfidf_logreg": {"accuracy": 0.9875}}}
    judged, sentences = verdict_sentences(degenerate, "failed", "gate failed: against_baseline (below)")
    assert judged.level == "degenerate" and judged.rows == 80
    assert verdict_title(judged) == "Verdict: degenerate (answers one label to every row)"
    assert sentences == [
        "accuracy: base 0.6625 → tuned 0.8125 (+0.1500) on 80 test rows.",
        "Does not beat TF-IDF + logistic regression, the best classic baseline (0.9875, -0.1750).",
        "Degenerate: the tuned model answers 'ham' to every test row.",
        "Release gate: gate failed: against_baseline (below)."]
    assert verdict(degenerate).startswith("Verdict: degenerate (answers one label to every row). accuracy: ")
    assert verdict_title(verdict_sentences(None)[0]) == "Not evaluated yet"


def test_warnings_say_what_makes_the_figures_less_trustworthy():
    train_summary = {"truncation": {"rows": 1600, "truncated_rows": 3, "supervised_tokens_lost": 12},
                     "skipped_steps": [4]}
    data_summary = {"findings": [
        {"kind": "duplicate", "split": "train", "count": 52}, {"kind": "duplicate", "split": "test", "count": 27},
        {"kind": "non_printable", "split": "train", "count": 2},
        {"kind": "leakage", "split": "train/validation", "count": 5},
        {"kind": "leakage", "split": "train/test", "count": 59},
    ], "unreadable_count": 0}
    found = dict(warnings(EVAL, train_summary, data_summary))
    assert found["leakage"].startswith("59 of 1,000 test rows are also in train")
    assert found["truncation"] == "3 of 1,600 training rows were truncated (12 supervised tokens lost)"
    assert found["skipped steps"].startswith("1 updates skipped")
    assert found["data check"] == ("duplicate (train 52, test 27); non_printable (train 2); leakage (train/validation "
                                   "5): see Data")
    assert warnings({**EVAL, "leakage": {"checked": True, "leaked_rows": 0}}, None, None) == []


def test_summary_section_opens_with_facts_then_the_verdict():
    config = validate_config({"data": {"train": "t.jsonl"}})
    section = summary_section(config, EVAL, {"steps": 200, "elapsed_s": 424.0}, None, {"total": 721.0})
    facts, sentence, table = section.blocks[:3]
    assert isinstance(facts, Facts) and dict(facts.items)["training"] == "200 steps in 7m 04s"
    assert dict(facts.items)["whole run"] == "12m 01s"
    assert isinstance(sentence, Text) and isinstance(table, Table)
    unevaluated = summary_section(config, None, None, None, None)
    assert any(isinstance(block, Text) and "Not evaluated yet" in block.text for block in unevaluated.blocks)


@pytest.mark.parametrize(("method", "described"), [
    ("lora", "default (LoRA r=16, alpha=32)"), ("dora", "default (DoRA r=16, alpha=32)"),
    ("qlora", "default (QLoRA (4-bit NF4 base) r=16, alpha=32)"), ("full", "default (full fine-tune)"),
])
def test_the_model_fact_names_the_method(method, described):
    config = validate_config({"data": {"train": "t.jsonl"}, "method": method})
    assert dict(summary_section(config, None, None, None, None).blocks[0].items)["model"] == described


def test_verdict_says_whether_the_tuned_model_beats_the_best_baseline():
    with_baselines = {**EVAL, "baselines": {"majority": {"accuracy": 0.856}, "tfidf_logreg": {"accuracy": 0.973}},
                      "unleaked": {**EVAL["unleaked"], "baselines": {"majority": {"accuracy": 0.85},
                                                                     "tfidf_logreg": {"accuracy": 0.97}}}}
    assert verdict(with_baselines) == (
        "Verdict: good (beats base +0.2640; beats TF-IDF + logistic regression +0.0100). accuracy: base 0.7190 → "
        "tuned 0.9830 (+0.2640) on 1,000 test rows; on the 941 rows not leaked from train: base 0.7000 → tuned "
        "0.9800 (+0.2800). Beats TF-IDF + logistic regression, the best classic baseline (0.9730, +0.0100).")


def test_the_summary_names_the_gate_it_is_given():
    config = validate_config({"data": {"train": "t.jsonl"}})
    section = summary_section(config, EVAL, None, None, None, gate=("failed", "gate failed: against_base (below)"))
    sentence = next(block.text for block in section.blocks if isinstance(block, Text))
    assert sentence.startswith("Verdict: mixed (beats base +0.2640; gate failed).")
    assert sentence.endswith("Release gate: gate failed: against_base (below).")
