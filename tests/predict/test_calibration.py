"""Temperature scaling and the calibration figures on synthetic scores whose calibration is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tunesmith.predict.calibration import (
    brier_score,
    calibrated_probabilities,
    calibration_figures,
    ece_interval,
    every_row_ranked_right,
    expected_calibration_error,
    fit_temperature,
    label_probabilities,
    reliability_bins,
    sequence_confidence,
)


def calibrated_sample(rows: int, labels: int, seed: int, spread: float = 2.0) -> tuple[np.ndarray, list[int]]:
    """Log-probability scores of a perfectly calibrated model, and labels drawn from its own probabilities."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, spread, size=(rows, labels))
    scores = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))  # log-softmax: what score_labels gives
    probabilities = np.exp(scores)
    targets = [int(rng.choice(labels, p=row)) for row in probabilities]
    return scores, targets


def test_fit_recovers_a_known_temperature():
    scores, targets = calibrated_sample(4_000, 3, seed=1)
    # An overconfident model: its scores are the calibrated ones times 2.5, so T = 2.5 undoes it.
    assert fit_temperature((scores * 2.5).tolist(), targets) == pytest.approx(2.5, rel=0.1)
    assert fit_temperature(scores.tolist(), targets) == pytest.approx(1.0, rel=0.1)


def test_rows_all_ranked_right_are_told_apart_from_rows_with_one_error():
    scores = [[-0.1, -2.5], [-3.0, -0.05], [-0.2, -1.8]]
    assert every_row_ranked_right(scores, [0, 1, 0])
    assert not every_row_ranked_right(scores, [0, 1, 1])
    # The reason it matters: with every row right the fit runs to the lower bound of its search.
    assert fit_temperature(scores, [0, 1, 0]) < 0.1


def test_fit_needs_rows():
    with pytest.raises(ValueError, match="at least one row"):
        fit_temperature([], [])


def test_calibration_never_changes_the_predicted_label():
    scores, _ = calibrated_sample(500, 4, seed=2)
    before = label_probabilities(scores).argmax(axis=1)
    for temperature in (0.1, 0.7, 1.0, 3.0, 19.0):
        assert (label_probabilities(scores, temperature).argmax(axis=1) == before).all()


def test_calibrated_probabilities_of_one_row():
    probabilities = calibrated_probabilities({"ham": math.log(0.8), "spam": math.log(0.2)})
    assert probabilities == pytest.approx({"ham": 0.8, "spam": 0.2})
    flatter = calibrated_probabilities({"ham": math.log(0.8), "spam": math.log(0.2)}, temperature=2.0)
    assert flatter["ham"] == pytest.approx(2 / 3) and sum(flatter.values()) == pytest.approx(1.0)


def test_ece_is_near_zero_when_calibrated_and_large_when_overconfident():
    scores, targets = calibrated_sample(20_000, 3, seed=3)
    assert expected_calibration_error(label_probabilities(scores), targets) < 0.02
    overconfident = label_probabilities(scores * 4.0)
    assert expected_calibration_error(overconfident, targets) > 0.1
    fitted = fit_temperature((scores * 4.0).tolist(), targets)
    assert expected_calibration_error(label_probabilities(scores * 4.0, fitted), targets) < 0.02


def test_ece_and_bins_on_known_values():
    # Two rows at confidence 0.9 (one right), two at 0.6 (both right): |0.5-0.9|*2/4 + |1.0-0.6|*2/4 = 0.4.
    probabilities = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.4, 0.6]])
    targets = [0, 1, 0, 1]
    assert expected_calibration_error(probabilities, targets) == pytest.approx(0.4)
    bins = reliability_bins(probabilities, targets)
    assert len(bins) == 10 and sum(b["count"] for b in bins) == 4
    assert bins[9] == {"low": 0.9, "high": 1.0, "count": 2, "confidence": pytest.approx(0.9), "accuracy": 0.5}
    assert bins[6]["count"] == 2 and bins[6]["accuracy"] == 1.0
    assert bins[0] == {"low": 0.0, "high": 0.1, "count": 0, "confidence": None, "accuracy": None}


def test_a_confidence_of_one_falls_in_the_top_bin():
    bins = reliability_bins(np.array([[1.0, 0.0]]), [0])
    assert bins[9]["count"] == 1


def test_brier_on_known_values():
    assert brier_score(np.array([[1.0, 0.0]]), [0]) == 0.0
    assert brier_score(np.array([[0.0, 1.0]]), [0]) == 2.0
    # (0.3^2 + 0.3^2) and (0.5^2 + 0.5^2), averaged.
    assert brier_score(np.array([[0.7, 0.3], [0.5, 0.5]]), [0, 1]) == pytest.approx((0.18 + 0.5) / 2)


def test_the_ece_interval_is_seeded_and_holds_the_ece():
    scores, targets = calibrated_sample(400, 2, seed=4)
    probabilities = label_probabilities(scores * 3.0)
    interval = ece_interval(probabilities, targets)
    assert interval == ece_interval(probabilities, targets)
    low, high = interval
    assert low <= expected_calibration_error(probabilities, targets) <= high
    assert ece_interval(probabilities[:1], targets[:1]) is None


def test_calibration_figures_fields():
    scores, targets = calibrated_sample(50, 2, seed=5)
    figures = calibration_figures(label_probabilities(scores), targets)
    assert set(figures) == {"rows", "ece", "ece_interval", "brier", "bins"} and figures["rows"] == 50


def test_sequence_confidence():
    assert sequence_confidence([math.log(0.5), math.log(0.5)]) == pytest.approx(0.5)
    assert sequence_confidence([]) is None
