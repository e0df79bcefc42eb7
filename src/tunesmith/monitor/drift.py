"""Drift statistics of live traffic against training data: pure functions of numbers and labels.

- **Population stability index** (PSI): ``sum((live - train) * ln(live / train))`` over bins of shares. The bins
  of a number (prompt length in tokens) are the deciles of the training values, so each holds about a tenth of
  training; the bins of labels are the labels. A bin empty on one side gets a share of `EPSILON` instead of 0
  (the logarithm would be infinite). Rules of thumb: below 0.1 stable, 0.1-0.2 a moderate shift, above 0.2 a
  large one.
- **Two-sample Kolmogorov-Smirnov test** (scipy): the largest gap between the two empirical distribution
  functions, and the p-value of seeing a gap that large if both samples came from one distribution. With many
  live requests a small, harmless shift gets a tiny p-value, which is why the PSI is reported beside it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import ks_2samp

EPSILON = 1e-4
"""Share given to a bin that is empty on one side."""
DECILES = np.linspace(0.1, 0.9, 9)


def decile_edges(reference: Sequence[float]) -> np.ndarray:
    """The distinct deciles of ``reference``: inner edges of up to 10 bins. Bin ``i`` holds the values from edge
    ``i - 1`` (included) to edge ``i`` (excluded), the first bin everything below the first edge and the last
    everything from the last edge up. Token counts repeat, so deciles can coincide: they make one edge. Deciles
    are values of the sample (``inverted_cdf``): interpolating between two counts would invent an edge between
    them that no prompt has."""
    if len(reference) == 0:
        raise ValueError("deciles of an empty sample")
    return np.unique(np.quantile(np.asarray(reference, dtype=float), DECILES, method="inverted_cdf"))


def binned_shares(values: Sequence[float], edges: np.ndarray) -> np.ndarray:
    """The share of ``values`` in each bin of `decile_edges` (``len(edges) + 1`` bins)."""
    counts = np.bincount(np.searchsorted(edges, np.asarray(values, dtype=float), side="right"),
                         minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def psi(train_shares: Sequence[float], live_shares: Sequence[float]) -> float:
    """Population stability index of two share vectors over the same bins (see the module docstring)."""
    train = np.maximum(np.asarray(train_shares, dtype=float), EPSILON)
    live = np.maximum(np.asarray(live_shares, dtype=float), EPSILON)
    return float(np.sum((live - train) * np.log(live / train)))


@dataclass(frozen=True)
class LengthDrift:
    psi: float
    ks_statistic: float
    ks_pvalue: float
    edges: list[float]
    """Inner bin edges (the training deciles)."""
    train_shares: list[float]
    live_shares: list[float]

    def to_dict(self) -> dict:
        return {"psi": self.psi, "ks_statistic": self.ks_statistic, "ks_pvalue": self.ks_pvalue,
                "bins": {"edges": self.edges, "train": self.train_shares, "live": self.live_shares}}


def length_drift(train: Sequence[float], live: Sequence[float]) -> LengthDrift:
    """PSI over the deciles of ``train`` and the KS test of ``live`` against ``train`` (both non-empty)."""
    edges = decile_edges(train)
    train_shares, live_shares = binned_shares(train, edges), binned_shares(live, edges)
    test = ks_2samp(np.asarray(train, dtype=float), np.asarray(live, dtype=float))
    return LengthDrift(psi(train_shares, live_shares), float(test.statistic), float(test.pvalue), edges.tolist(),
                       train_shares.tolist(), live_shares.tolist())


def label_shares(labels: Iterable[str], names: Sequence[str]) -> dict[str, float]:
    """The share of each of ``names`` among ``labels`` (0 for a name that never occurs)."""
    counts = Counter(labels)
    total = sum(counts.values())
    return {name: counts[name] / total if total else 0.0 for name in names}


@dataclass(frozen=True)
class LabelDrift:
    psi: float
    train_shares: dict[str, float]
    live_shares: dict[str, float]
    """Over the training labels, then any label seen live only."""

    def to_dict(self) -> dict:
        return {"psi": self.psi, "shares": {label: {"train": self.train_shares[label], "live": self.live_shares[label]}
                                            for label in self.train_shares}}


def label_drift(train: Sequence[str], live: Sequence[str], names: Sequence[str] | None = None) -> LabelDrift:
    """PSI of the live label mix against the training one. ``names``: the label set in its order (the run's
    labels), else the labels as first seen in training; a label seen only live gets a bin of its own."""
    order = list(dict.fromkeys([*(names or train), *train, *live]))
    train_shares, live_shares = label_shares(train, order), label_shares(live, order)
    return LabelDrift(psi(list(train_shares.values()), list(live_shares.values())), train_shares, live_shares)


def percentiles(values: Sequence[float], points: Sequence[int]) -> dict[str, float | None]:
    """``{"p50": ..., "p95": ...}`` of ``values`` (linear interpolation); None for each when there are none."""
    if len(values) == 0:
        return {f"p{point}": None for point in points}
    found = np.percentile(np.asarray(values, dtype=float), list(points))
    return {f"p{point}": float(value) for point, value in zip(points, found)}
