"""Confidence intervals of results: a proportion's Wilson score interval (review win rates, label agreement,
preference accuracy) and a seeded bootstrap interval of a mean (preference reward margins). Pure numpy and scipy,
below every stage that reports a rate."""

from __future__ import annotations

import numpy as np

_BOOTSTRAP_CELLS = 2_000_000
"""Resampled values drawn at once: bounds the bootstrap's memory whatever the number of values."""


def wilson_interval(successes: int, trials: int, confidence: float) -> list[float] | None:
    """The Wilson score interval of a proportion at ``confidence``; None without trials."""
    from scipy.stats import binomtest

    if not trials:
        return None
    interval = binomtest(successes, trials).proportion_ci(confidence_level=confidence, method="wilson")
    return [float(interval.low), float(interval.high)]


def bootstrap_mean_interval(values, confidence: float, resamples: int, seed: int) -> list[float] | None:
    """The percentile interval at ``confidence`` of the mean of ``values`` over ``resamples`` seeded resamples;
    None without values."""
    values = np.asarray(values, dtype=float)
    if not values.size:
        return None
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CELLS // values.size)
    means = np.concatenate([values[rng.integers(0, values.size, size=(min(chunk, resamples - start), values.size))]
                            .mean(axis=1) for start in range(0, resamples, chunk)])
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return [float(low), float(high)]
