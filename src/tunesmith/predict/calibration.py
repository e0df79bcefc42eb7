"""Confidence a user can take at its word: label probabilities with temperature scaling, how well they are
calibrated, and a generation's sequence confidence.

Label likelihood scores are each label's total log-probability as the reply; their softmax is a probability over
the labels, but a fine-tuned model is typically overconfident (it says 0.99 and is right 95% of the time).
Temperature scaling divides the scores by one number ``T`` fitted on held-out rows (the validation split,
`fit_temperature`); it never changes which label wins, so accuracy and every other metric stay as they were.

How well probabilities are calibrated (`calibration_figures`): the expected calibration error (ECE: rows binned by
the confidence of their predicted label into 10 equal-width bins, the row-weighted mean gap between each bin's
mean confidence and its accuracy; 0 is perfect) with a seeded bootstrap interval, the multi-class Brier score (the
mean squared distance between the probability vector and the one-hot truth: 0 is perfect, lower is better), and
the reliability-diagram bins behind the ECE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax

BINS = 10
"""Equal-width confidence bins of the ECE and the reliability diagram."""
BOOTSTRAP_RESAMPLES = 1_000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
"""Coverage of the ECE's bootstrap interval."""
TEMPERATURE_BOUNDS = (0.05, 20.0)
"""Where the fitted temperature is looked for: wide enough for any model we tune (an overconfident one fits 1-3),
bounded so that a validation split the model gets all right cannot push it to zero."""


def label_probabilities(scores: Sequence[Sequence[float]], temperature: float | None = None) -> np.ndarray:
    """Rows of label log-probability scores → rows of probabilities over the labels (each sums to 1), after
    dividing the scores by ``temperature`` (None or 1.0: the plain softmax)."""
    return softmax(np.asarray(scores, dtype=np.float64) / (temperature or 1.0), axis=1)


def calibrated_probabilities(scores: dict[str, float], temperature: float | None = None) -> dict[str, float]:
    """One row of `label_probabilities` as ``{label: probability}``."""
    probabilities = label_probabilities([list(scores.values())], temperature)[0]
    return {label: float(probability) for label, probability in zip(scores, probabilities)}


def fit_temperature(scores: list[list[float]], targets: list[int]) -> float:
    """The temperature that minimizes the negative log-likelihood of ``targets`` (the true label's index of each
    row) under ``softmax(scores / T)``: the standard temperature scaling, searched on log T within
    `TEMPERATURE_BOUNDS`. Raises ValueError without rows."""
    if not targets:
        raise ValueError("fitting a temperature needs at least one row")
    logits = np.asarray(scores, dtype=np.float64)
    rows = np.arange(len(targets))
    truth = np.asarray(targets)

    def negative_log_likelihood(log_temperature: float) -> float:
        return float(-log_softmax(logits / math.exp(log_temperature), axis=1)[rows, truth].mean())

    low, high = (math.log(bound) for bound in TEMPERATURE_BOUNDS)
    found = minimize_scalar(negative_log_likelihood, bounds=(low, high), method="bounded",
                            options={"xatol": 1e-5})
    return float(math.exp(found.x))


def every_row_ranked_right(scores: list[list[float]], targets: list[int]) -> bool:
    """Whether each row's highest score is its target's. Then the likelihood rises without end as the temperature
    falls, so temperature scaling has no finite fit: a small validation split the model gets all right would push
    the fitted temperature to its lower bound and every answer to near-certainty."""
    return all(max(range(len(row)), key=row.__getitem__) == target for row, target in zip(scores, targets))


def expected_calibration_error(probabilities: np.ndarray, targets: Sequence[int], bins: int = BINS) -> float:
    """The ECE of ``probabilities`` (rows over the labels) against ``targets`` (see the module docstring)."""
    confidence, correct = _confidence_and_correct(probabilities, targets)
    return _ece(confidence, correct, bins)


def brier_score(probabilities: np.ndarray, targets: Sequence[int]) -> float:
    """The multi-class Brier score: the mean over rows of the squared distance to the one-hot truth (0 to 2)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    truth = np.zeros_like(probabilities)
    truth[np.arange(len(targets)), np.asarray(targets, dtype=int)] = 1.0
    return float(((probabilities - truth) ** 2).sum(axis=1).mean())


def reliability_bins(probabilities: np.ndarray, targets: Sequence[int], bins: int = BINS) -> list[dict]:
    """The reliability diagram: per equal-width bin of the predicted label's confidence, its edges (``low``,
    ``high``), ``count`` of rows, their mean ``confidence`` and ``accuracy`` (None for an empty bin)."""
    confidence, correct = _confidence_and_correct(probabilities, targets)
    which = _bin_of(confidence, bins)
    result = []
    for index in range(bins):
        inside = which == index
        count = int(inside.sum())
        result.append({"low": index / bins, "high": (index + 1) / bins, "count": count,
                       "confidence": float(confidence[inside].mean()) if count else None,
                       "accuracy": float(correct[inside].mean()) if count else None})
    return result


def ece_interval(probabilities: np.ndarray, targets: Sequence[int], bins: int = BINS,
                 resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> list[float] | None:
    """The `CONFIDENCE` percentile bootstrap interval of the ECE (rows resampled with replacement, seeded: the
    same rows give the same interval); None below two rows."""
    confidence, correct = _confidence_and_correct(probabilities, targets)
    if len(confidence) < 2:
        return None
    draws = np.random.default_rng(seed).integers(0, len(confidence), size=(resamples, len(confidence)))
    values = [_ece(confidence[draw], correct[draw], bins) for draw in draws]
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]


def calibration_figures(probabilities: np.ndarray, targets: Sequence[int]) -> dict:
    """What eval.json records of a set of probabilities: ``rows``, ``ece``, ``ece_interval``, ``brier`` and the
    reliability ``bins``."""
    return {"rows": len(targets), "ece": expected_calibration_error(probabilities, targets),
            "ece_interval": ece_interval(probabilities, targets), "brier": brier_score(probabilities, targets),
            "bins": reliability_bins(probabilities, targets)}


def sequence_confidence(token_logprobs: Sequence[float]) -> float | None:
    """A generated answer's confidence: the geometric mean of its tokens' probabilities, ``exp(mean log p)``, in
    (0, 1]; None for an answer without tokens."""
    if not token_logprobs:
        return None
    return math.exp(sum(token_logprobs) / len(token_logprobs))


def _confidence_and_correct(probabilities: np.ndarray, targets: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if len(probabilities) != len(targets):
        raise ValueError(f"{len(probabilities)} probability rows for {len(targets)} targets")
    predicted = probabilities.argmax(axis=1) if len(probabilities) else np.zeros(0, dtype=int)
    confidence = probabilities.max(axis=1) if len(probabilities) else np.zeros(0)
    return confidence, (predicted == np.asarray(targets, dtype=int)).astype(np.float64)


def _bin_of(confidence: np.ndarray, bins: int) -> np.ndarray:
    # [low, high) bins, with a confidence of exactly 1 in the top one.
    return np.minimum((confidence * bins).astype(int), bins - 1)


def _ece(confidence: np.ndarray, correct: np.ndarray, bins: int) -> float:
    if not len(confidence):
        return 0.0
    which = _bin_of(confidence, bins)
    counts = np.bincount(which, minlength=bins)
    gaps = np.abs(np.bincount(which, weights=correct, minlength=bins)
                  - np.bincount(which, weights=confidence, minlength=bins))
    return float(gaps.sum() / counts.sum())
