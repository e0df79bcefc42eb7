"""The gate's statistics: every metric recomputed from resampled row statistics as the task metrics score those
rows, the bootstrap interval against known cases, McNemar against statsmodels."""

from __future__ import annotations

import random

import numpy as np
import pytest

from tunesmith.gate.stats import mcnemar, metric_statistics, paired_bootstrap
from tunesmith.predict.metrics import (
    classification_metrics,
    generation_metrics,
    parse_number,
    regression_metrics,
)

LABELS = ["ham", "spam", "other"]


def _cases():
    rng = random.Random(0)
    truths = [rng.choice(LABELS) for _ in range(60)]
    answers = [rng.choice([*LABELS, "gibberish"]) for _ in range(60)]
    targets = [rng.uniform(0, 5) for _ in range(60)]
    numbers = [f"about {target + rng.gauss(0, 1):.3f}" if index % 7 else "no idea" for index, target in
               enumerate(targets)]
    references = [["the cat sat on the mat today", "a cat on a mat"], ["we will meet at noon near the station"],
                  ["send the report by friday please"]] * 20
    generated = ["the cat sat on a mat today", "we meet at noon at the station", "send the report friday please",
                 "the cat", "we will meet at noon near the station", "report by friday"] * 10
    yield from (("classification", metric, truths, answers) for metric in ("accuracy", "precision", "recall", "f1"))
    yield from (("regression", metric, targets, numbers) for metric in ("mse", "mae", "pearson"))
    yield from (("generation", metric, references, generated) for metric in ("bleu", "rouge_l", "exact_match"))


def _task_metric(task, metric, truths, answers):
    if task == "classification":
        return classification_metrics(truths, answers, LABELS)[metric]
    if task == "regression":
        return regression_metrics(truths, [parse_number(answer) for answer in answers])[metric]
    return generation_metrics(truths, answers)[metric]


@pytest.mark.parametrize(("task", "metric", "truths", "answers"), list(_cases()), ids=lambda value: str(value)[:12])
def test_a_metric_from_resampled_row_statistics_is_the_metric_of_the_resampled_rows(task, metric, truths, answers):
    statistics = metric_statistics(metric, truths, answers, LABELS)
    assert statistics.metric() == pytest.approx(_task_metric(task, metric, truths, answers), rel=1e-9, abs=1e-12)
    rows = np.random.default_rng(1).integers(0, len(truths), len(truths))
    counts = np.bincount(rows, minlength=len(truths)).astype(float)
    resampled = statistics.score((counts @ statistics.values)[None, :])[0]
    expected = _task_metric(task, metric, [truths[i] for i in rows], [answers[i] for i in rows])
    assert resampled == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_a_metric_not_scored_per_row_is_refused():
    with pytest.raises(ValueError, match="not scored per row"):
        metric_statistics("loss", ["a"], ["a"])


def test_the_interval_of_a_constant_difference_is_that_difference():
    tuned = metric_statistics("mse", [0.0] * 50, ["2"] * 50)
    other = metric_statistics("mse", [0.0] * 50, ["1"] * 50)
    difference, interval = paired_bootstrap(tuned, other, 0.95, 500, 0)
    assert difference == 3.0 and interval == [3.0, 3.0]


def test_the_interval_of_a_mean_difference_matches_the_normal_approximation_and_scipy():
    from scipy.stats import bootstrap

    rng = np.random.default_rng(7)
    truths = ["ham"] * 2000
    tuned_right = rng.random(2000) < 0.85
    other_right = np.where(rng.random(2000) < 0.8, tuned_right, rng.random(2000) < 0.7)
    tuned = metric_statistics("accuracy", truths, ["ham" if right else "spam" for right in tuned_right])
    other = metric_statistics("accuracy", truths, ["ham" if right else "spam" for right in other_right])
    difference, (low, high) = paired_bootstrap(tuned, other, 0.95, 4000, 0)
    per_row = tuned_right.astype(float) - other_right
    assert difference == pytest.approx(per_row.mean())
    half_width = 1.959964 * per_row.std() / np.sqrt(len(per_row))  # the bootstrap's spread is the plug-in one
    assert low == pytest.approx(per_row.mean() - half_width, abs=0.0025)
    assert high == pytest.approx(per_row.mean() + half_width, abs=0.0025)
    theirs = bootstrap((per_row,), np.mean, confidence_level=0.95, n_resamples=4000, method="percentile",
                       random_state=1).confidence_interval
    assert (low, high) == pytest.approx((theirs.low, theirs.high), abs=0.003)


def test_the_same_seed_gives_the_same_interval_and_another_seed_another():
    truths = ["ham", "spam"] * 100
    tuned = metric_statistics("f1", truths, ["ham"] * 150 + ["spam"] * 50, ["ham", "spam"])
    other = metric_statistics("f1", truths, ["spam"] * 120 + ["ham"] * 80, ["ham", "spam"])
    first = paired_bootstrap(tuned, other, 0.9, 1000, seed=3)
    assert paired_bootstrap(tuned, other, 0.9, 1000, seed=3) == first
    assert paired_bootstrap(tuned, other, 0.9, 1000, seed=4)[1] != first[1]
    assert paired_bootstrap(tuned, other, 0.99, 1000, seed=3)[1][0] < first[1][0]  # a higher level is wider


def test_an_undefined_metric_has_no_interval():
    constant = metric_statistics("pearson", [1.0, 2.0, 3.0], ["1", "1", "1"])
    _, interval = paired_bootstrap(constant, constant, 0.95, 200, 0)
    assert interval is None


@pytest.mark.parametrize(("tuned_only", "other_only"), [(0, 1), (3, 9), (12, 12), (30, 7), (270, 6), (1, 40)])
def test_mcnemar_matches_statsmodels(tuned_only, other_only):
    from statsmodels.stats.contingency_tables import mcnemar as reference

    table = [[500, tuned_only], [other_only, 100]]
    assert mcnemar(tuned_only, other_only) == pytest.approx(reference(table, exact=True).pvalue, rel=1e-12)
    assert mcnemar(tuned_only, other_only, exact=False) == pytest.approx(
        reference(table, exact=False, correction=True).pvalue, rel=1e-12)


def test_mcnemar_without_discordant_rows_cannot_tell_the_models_apart():
    assert mcnemar(0, 0) == 1.0 and mcnemar(0, 0, exact=False) == 1.0


def test_a_ratio_of_sums_and_its_own_interval():
    from tunesmith.gate.stats import bootstrap_interval, ratio_statistics

    agreed, tokens = [3, 0, 5, 2, 4, 1, 6, 2], [4, 2, 5, 4, 4, 3, 6, 4]
    ratio = ratio_statistics(agreed, tokens)
    assert ratio.metric() == pytest.approx(sum(agreed) / sum(tokens))
    low, high = bootstrap_interval(ratio, 0.95, 2000, seed=3)
    assert low < ratio.metric() < high and bootstrap_interval(ratio, 0.95, 2000, seed=3) == [low, high]
    assert bootstrap_interval(ratio_statistics([2, 4], [4, 8]), 0.95, 500, seed=0) == pytest.approx([0.5, 0.5])
    assert bootstrap_interval(ratio_statistics([], []), 0.95, 500, seed=0) is None
