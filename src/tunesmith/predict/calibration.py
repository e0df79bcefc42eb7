"""Confidence a user can take at its word: label probabilities with temperature scaling, and a generation's
sequence confidence.

Label likelihood scores are each label's total log-probability as the reply; their softmax is a probability over
the labels, but a fine-tuned model is typically overconfident (it says 0.99 and is right 95% of the time).
Temperature scaling divides the scores by one number ``T`` fitted on held-out rows (the validation split); it
never changes which label wins, so accuracy and every other metric stay as they were.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def calibrated_probabilities(scores: dict[str, float], temperature: float | None = None) -> dict[str, float]:
    """Label log-probability scores → probabilities over the label set (they sum to 1), after dividing the scores
    by ``temperature`` (None or 1.0: the plain softmax)."""
    scale = 1.0 / (temperature or 1.0)
    top = max(scores.values())
    weights = {label: math.exp((score - top) * scale) for label, score in scores.items()}
    total = sum(weights.values())
    return {label: weight / total for label, weight in weights.items()}


def sequence_confidence(token_logprobs: Sequence[float]) -> float | None:
    """A generated answer's confidence: the geometric mean of its tokens' probabilities, ``exp(mean log p)``, in
    (0, 1]; None for an answer without tokens."""
    if not token_logprobs:
        return None
    return math.exp(sum(token_logprobs) / len(token_logprobs))
