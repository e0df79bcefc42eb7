"""Evaluation of a preference run: the eval.json ``preference`` block against a direct computation, the rewards of
each method, and the task block measured again on the init_from run's test rows with its model as the base."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tunesmith.data.pairs import tokenize_pairs
from tunesmith.data.run_inputs import RunInputs
from tunesmith.errors import RunError
from tunesmith.evaluate.preference import (
    PAIRS_FILE,
    PairScores,
    check_finite,
    evaluate_preference,
    init_from_label,
    preference_block,
    task_inputs,
)
from tunesmith.evaluate.runner import evaluate_run
from tunesmith.json_files import read_jsonl
from tunesmith.models import load_model_folder, load_tuned_model
from tunesmith.results.intervals import wilson_interval

SCORES = PairScores(locations=["p:1", "p:2", "p:3"], prompts=["a", "b", "c"],
                    chosen=[-10.0, -20.0, -5.0], rejected=[-12.0, -15.0, -9.0],
                    reference_chosen=[-11.0, -18.0, -6.0], reference_rejected=[-11.5, -17.0, -8.0],
                    chosen_tokens=[4, 5, 2], rejected_tokens=[3, 5, 6])


def test_dpo_block_is_beta_times_the_move_away_from_the_reference():
    block = preference_block("dpo", 0.1, SCORES, 0.95, 500, 0)
    margins = [0.1 * ((-10 + 11) - (-12 + 11.5)), 0.1 * ((-20 + 18) - (-15 + 17)), 0.1 * ((-5 + 6) - (-9 + 8))]
    assert block["pairs"] == 3 and block["method"] == "dpo" and block["beta"] == 0.1
    assert block["tuned"]["accuracy"] == pytest.approx(2 / 3)
    assert block["tuned"]["accuracy_ci"] == pytest.approx(wilson_interval(2, 3, 0.95))
    assert block["tuned"]["margin_mean"] == pytest.approx(np.mean(margins))
    low, high = block["tuned"]["margin_ci"]
    assert min(margins) - 1e-12 <= low <= np.mean(margins) <= high <= max(margins) + 1e-12
    # The reference's own ranking: log p(chosen) > log p(rejected) on pairs 1 and 3, not 2.
    assert block["reference"]["accuracy"] == pytest.approx(2 / 3)
    assert block["reference"]["margin_mean"] == pytest.approx(np.mean([0.5, -1.0, 2.0]))


def test_simpo_and_orpo_rank_by_the_length_normalized_log_probability():
    simpo = preference_block("simpo", 2.0, SCORES, 0.95, 200, 0)
    means = [(-10 / 4, -12 / 3), (-20 / 5, -15 / 5), (-5 / 2, -9 / 6)]
    assert simpo["tuned"]["margin_mean"] == pytest.approx(np.mean([2.0 * (c - r) for c, r in means]))
    assert simpo["tuned"]["accuracy"] == pytest.approx(1 / 3)  # -2.5 > -4; -4 < -3; -2.5 < -1.5

    def log_odds(mean: float) -> float:
        return mean - np.log1p(-np.exp(mean))

    orpo = preference_block("orpo", 0.1, SCORES, 0.95, 200, 0)
    assert orpo["tuned"]["margin_mean"] == pytest.approx(np.mean([log_odds(c) - log_odds(r) for c, r in means]))


def test_a_nan_log_probability_is_refused_naming_the_pair():
    broken = PairScores(**{**SCORES.__dict__, "reference_rejected": [-11.5, float("nan"), -8.0]})
    with pytest.raises(RunError, match=r"the reference model gives non-finite log-probabilities to 1 of 3 test pairs "
                                       r"\(first p:2\)"):
        check_finite(broken)
    check_finite(SCORES)


def _direct_logp(model, row) -> float:
    """The summed log-probability of a sequence's supervised tokens, one full forward pass, no shared code."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([row.input_ids])).logits[0].float()
    logps = torch.log_softmax(logits, dim=-1)
    return float(sum(logps[t - 1, row.input_ids[t]] for t in range(1, len(row.labels)) if row.labels[t] != -100))


def test_the_preference_block_matches_a_direct_computation(preference_run, tiny_model_dir):
    config, run, splits = preference_run
    block = evaluate_preference(config, run, splits.test)
    tuned, tokenizer = load_tuned_model(run.root, merge=True)
    reference = load_model_folder(tiny_model_dir, config.model)  # the adapter's base: its reference policy
    pairs, _ = tokenize_pairs(splits.test, tokenizer, config.data.max_length)
    chosen = np.array([_direct_logp(tuned, pair.chosen) for pair in pairs])
    rejected = np.array([_direct_logp(tuned, pair.rejected) for pair in pairs])
    reference_chosen = np.array([_direct_logp(reference, pair.chosen) for pair in pairs])
    reference_rejected = np.array([_direct_logp(reference, pair.rejected) for pair in pairs])
    margins = 0.1 * ((chosen - reference_chosen) - (rejected - reference_rejected))
    assert block["pairs"] == 4
    assert block["tuned"]["margin_mean"] == pytest.approx(margins.mean(), abs=1e-4)
    assert block["tuned"]["accuracy"] == pytest.approx(np.mean(margins > 0))
    assert block["reference"]["accuracy"] == pytest.approx(np.mean(reference_chosen > reference_rejected))
    assert block["reference"]["margin_mean"] == pytest.approx((reference_chosen - reference_rejected).mean(),
                                                              abs=1e-4)
    rows = read_jsonl(run.root / PAIRS_FILE)
    assert [row["location"] for row in rows] == [example.location for example in splits.test]
    assert [row["chosen_logp"] for row in rows] == pytest.approx(chosen.tolist(), abs=1e-4)
    assert rows[0]["prompt"] == "Say hello."


def test_a_preference_run_is_measured_on_the_init_from_runs_task(preference_run, run_folder):
    config, run, splits = preference_run
    result = evaluate_run(config, run, RunInputs(config, splits))
    assert json.loads(run.eval_json.read_text(encoding="utf-8")) == result
    # The task block: the SFT run's 3 classification test rows, its model as the base, named so.
    assert result["task"] == "classification" and result["num_examples"] == 3 and result["base"] is not None
    assert result["init_from"]["run"] == run_folder.root.name and result["init_from"]["test_rows"] == 3
    assert result["columns"] == [init_from_label(config), "tuned"]
    assert init_from_label(config) == f"SFT model ({run_folder.root.parent.name}/{run_folder.root.name})"
    assert [line["location"] for line in read_jsonl(run.predictions)] == \
        [f"{run_folder.config().data.test}:{n}" for n in (1, 2, 3)]
    assert result["preference"]["pairs"] == 4 and result["preference"]["method"] == "dpo"


def test_a_run_without_init_from_keeps_its_own_inputs(run_folder):
    config = run_folder.config()
    inputs = RunInputs(config)
    assert task_inputs(config, inputs) == (config, inputs, None)
