"""`run_verdict`: the levels on hand-made eval.json dicts, the degenerate classifier first."""

from __future__ import annotations

import copy

import pytest

from tunesmith.results.verdict import LEVELS, run_verdict

RESULT = {"task": "classification", "num_examples": 80,
          "base": {"accuracy": 0.6}, "tuned": {"accuracy": 0.95, "confusion_matrix": {
              "labels": ["ham", "spam"], "matrix": [[64, 1], [3, 12]]}},
          "baselines": {"majority": {"accuracy": 0.8125}, "tfidf_logreg": {"accuracy": 0.9}}}


def changed(**tuned) -> dict:
    result = copy.deepcopy(RESULT)
    result["tuned"].update(tuned)
    return result


def test_a_model_that_beats_the_base_and_every_baseline_is_good():
    verdict = run_verdict(RESULT)
    assert verdict.level == "good" and verdict.rows == 80 and verdict.metric == "accuracy"
    assert verdict.headline == "beats base +0.3500; beats TF-IDF + logistic regression +0.0500"
    assert verdict.sentences[0] == "accuracy: base 0.6000 → tuned 0.9500 (+0.3500) on 80 test rows."


def test_a_classifier_answering_one_label_is_degenerate_whatever_its_gain_over_the_base():
    verdict = run_verdict(changed(accuracy=0.8125, confusion_matrix={"labels": ["ham", "spam"],
                                                                     "matrix": [[65, 0], [15, 0]]}))
    assert verdict.level == "degenerate" and verdict.headline == "answers one label to every row"
    assert "Degenerate: the tuned model answers 'ham' to every test row." in verdict.sentences
    assert verdict.sentences[0].endswith("(+0.2125) on 80 test rows.")


def test_no_better_than_the_majority_class_is_degenerate_even_with_several_labels():
    verdict = run_verdict(changed(accuracy=0.8))
    assert verdict.level == "degenerate" and verdict.headline == "no better than a constant answer"
    assert "Degenerate: it does no better than always giving the majority class (accuracy 0.8125)." in \
        verdict.sentences


@pytest.mark.parametrize(("tuned", "gate", "level"), [(0.85, None, "mixed"), (0.95, "failed", "mixed"),
                                                      (0.95, "stale", "mixed"), (0.95, "passed", "good")])
def test_below_the_best_baseline_or_a_failed_gate_is_mixed(tuned, gate, level):
    verdict = run_verdict(changed(accuracy=tuned), gate, f"gate {gate}")
    assert verdict.level == level
    if gate:
        assert verdict.sentences[-1] == f"Release gate: gate {gate}."


def test_worse_than_the_base_and_not_evaluated():
    result = changed(accuracy=0.9)
    result["base"]["accuracy"] = 0.92
    assert run_verdict(result).level == "worse"
    assert run_verdict(None).level == run_verdict({"task": "classification"}).level == "unknown"
    assert LEVELS[-1] == "unknown"


def test_a_loss_is_better_lower():
    result = {"task": "regression", "num_examples": 10, "base": {"mse": 2.0}, "tuned": {"mse": 0.5},
              "baselines": {"mean": {"mse": 1.0}, "tfidf_ridge": {"mse": 0.4}}}
    verdict = run_verdict(result)
    assert verdict.level == "mixed" and "below TF-IDF + ridge regression +0.1000" in verdict.headline


# ---- a run that continues from another (model.init_from), and a preference run -------------------------------------

PREFERENCE = {**copy.deepcopy(RESULT), "base": {"accuracy": 0.95},
              "init_from": {"run": "sft", "label": "SFT model (runs/sft)", "margin": 0.01},
              "preference": {"pairs": 40, "method": "dpo", "beta": 0.1,
                             "tuned": {"accuracy": 0.8}, "reference": {"accuracy": 0.55}}}


def preference_result(task_accuracy: float, preference_accuracy: float = 0.8) -> dict:
    result = copy.deepcopy(PREFERENCE)
    result["tuned"]["accuracy"] = task_accuracy
    result["preference"]["tuned"]["accuracy"] = preference_accuracy
    return result


def test_a_preference_step_that_keeps_the_task_and_ranks_better_is_good():
    verdict = run_verdict(preference_result(0.945))  # -0.005: within gate.margin 0.01
    assert verdict.level == "good"
    assert verdict.headline.startswith("preference accuracy 0.5500 → 0.8000; accuracy kept vs SFT model (runs/sft) "
                                       "-0.0050")
    assert verdict.sentences[0] == "Preference accuracy on 40 held-out pairs: reference 0.5500 → tuned 0.8000."


def test_a_preference_step_that_costs_task_accuracy_is_worse_and_says_why():
    kept, fell = run_verdict(preference_result(0.945)), run_verdict(preference_result(0.9))
    assert LEVELS.index(fell.level) > LEVELS.index(kept.level) and fell.level == "worse"
    assert "accuracy fell vs SFT model (runs/sft) -0.0500 (beyond gate.margin 0.0100)" in fell.headline
    assert any("fell beyond gate.margin" in sentence for sentence in fell.sentences)


def test_the_gate_margin_recorded_by_the_evaluation_decides():
    result = preference_result(0.92)  # -0.03: beyond the recorded gate.margin 0.01, within 0.05
    assert run_verdict(result).level == "worse"
    result["init_from"]["margin"] = 0.05
    assert run_verdict(result).level == "good"


def test_the_margin_a_preference_run_keeps_its_task_within_is_read_in_bleu_points():
    """gate.margin is stated on the 0–1 scale; BLEU is reported on 0–100, so 0.01 allows 1 BLEU point."""
    def generation(tuned_bleu: float) -> dict:
        return {**copy.deepcopy(PREFERENCE), "task": "generation", "labels": None, "num_examples": 50,
                "base": {"bleu": 20.0}, "tuned": {"bleu": tuned_bleu}, "baselines": {}}

    kept, fell = run_verdict(generation(19.5)), run_verdict(generation(18.0))
    assert kept.level == "good" and "bleu kept vs SFT model (runs/sft) -0.5000" in kept.headline
    assert any(sentence.endswith("kept within gate.margin 0.01 = 1 bleu.") for sentence in kept.sentences)
    assert fell.level == "worse" and "bleu fell vs SFT model (runs/sft) -2.0000 (beyond gate.margin 0.01 = 1 bleu)" \
        in fell.headline


def test_preference_accuracy_not_above_the_reference_is_not_good():
    verdict = run_verdict(preference_result(0.95, preference_accuracy=0.55))
    assert verdict.level == "mixed" and "(not above the reference)" in verdict.headline


def test_an_unmeasured_preference_accuracy_is_not_good_and_says_why():
    result = preference_result(0.95)
    result["preference"] = {"skipped": "the run's test split has no preference pairs"}
    verdict = run_verdict(result)
    assert verdict.level == "mixed" and verdict.headline.startswith("preference accuracy not measured")
    assert verdict.sentences[0] == "Preference accuracy not measured: the run's test split has no preference pairs."
