"""Drift statistics of a window of live traffic against a run's reference (held-out rows, `tunesmith.results.
reference`): pure functions of numbers and labels, each test with a p-value under "live and reference come from
one distribution".

- **Tail share** (novelty above the reference's upper tail, confidence below its lower tail): the cutoff is a
  percentile of the reference sample, so the reference's own share beyond it is fixed by construction and the
  live share beyond it varies with how far that sample percentile fell from the true one. Under the null the live
  and reference values are exchangeable, and the number of live values beyond the ``(r + 1)``-th most extreme
  reference value (``r`` reference values lie beyond the cutoff) follows the negative hypergeometric distribution
  exactly; the p-value is its upper tail (`tail_shift`). Ties at the cutoff do not count as beyond it, which only
  makes the test more cautious.
- **Prompt length**: the two-sample Kolmogorov-Smirnov test (scipy; conservative for token counts, which repeat),
  with the population stability index (PSI) over the reference deciles beside it as the effect size:
  ``sum((live - ref) * ln(live / ref))`` over bins of shares, a bin empty on one side counted as `EPSILON`
  (rules of thumb: below 0.1 stable, 0.1-0.2 a moderate shift, above 0.2 a large one).
- **Label mix**: the chi-square statistic of the 2 x K table (live vs reference predicted labels), its p-value
  from `PERMUTATIONS` random reassignments of the pooled labels to the two samples (the live counts of a
  reassignment are a multivariate hypergeometric draw). Unlike the chi-square distribution this holds on windows
  whose expected counts are small: ``(1 + as extreme) / (1 + permutations)`` is never below the nominal level.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import ks_2samp, nhypergeom

EPSILON = 1e-4
"""The share given to a bin that is empty on one side."""
DECILES = np.linspace(0.1, 0.9, 9)
PERMUTATIONS = 9_999
"""Reassignments behind a label-mix p-value: the smallest p-value it can give is 1 / 10,000, well below the level
each check is judged at (``monitor.false_alarm_rate`` split over the checks)."""
PERMUTATION_SEED = 0
Z_95 = 1.959963984540054


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


def psi(reference_shares: Sequence[float], live_shares: Sequence[float]) -> float:
    """Population stability index of two share vectors over the same bins (see the module docstring)."""
    reference = np.maximum(np.asarray(reference_shares, dtype=float), EPSILON)
    live = np.maximum(np.asarray(live_shares, dtype=float), EPSILON)
    return float(np.sum((live - reference) * np.log(live / reference)))


def share_interval(count: int, total: int, z: float = Z_95) -> list[float]:
    """The 95% Wilson score interval of the share ``count / total`` (what scipy's ``binomtest(...).proportion_ci(
    method="wilson")`` gives, without the test it runs first)."""
    center = (count + z * z / 2) / (total + z * z)
    half = z / (total + z * z) * np.sqrt(count * (total - count) / total + z * z / 4)
    return [float(max(center - half, 0.0)), float(min(center + half, 1.0))]


# ---- tail shares ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TailShift:
    cutoff: float
    """The reference percentile: live values beyond it count."""
    beyond: int
    live: int
    reference_beyond: int
    reference_rows: int
    p_value: float
    breach_at: float | None
    """The smallest live share beyond the cutoff that the test rejects at the level it was given (None: no share
    up to 1 is rare enough, or no level)."""

    @property
    def share(self) -> float:
        return self.beyond / self.live

    def to_dict(self) -> dict:
        return {"share": self.share, "share_interval": share_interval(self.beyond, self.live),
                "beyond": self.beyond, "live": self.live, "cutoff": self.cutoff,
                "reference_share": self.reference_beyond / self.reference_rows, "reference_rows": self.reference_rows,
                "p_value": self.p_value, "breach_at": self.breach_at}


def tail_shift(reference: Sequence[float], live: Sequence[float], tail: float, upper: bool,
               level: float | None = None) -> TailShift:
    """The share of ``live`` above the reference's ``1 - tail`` percentile (``upper``) or below its ``tail``
    percentile, and the p-value of a share that large (see the module docstring); ``level`` gives `breach_at`.
    Both samples non-empty."""
    ref = np.asarray(reference, dtype=float)
    values = np.asarray(live, dtype=float)
    cutoff = float(np.quantile(ref, 1 - tail if upper else tail, method="inverted_cdf"))
    reference_beyond = int(np.sum(ref > cutoff if upper else ref < cutoff))
    beyond = int(np.sum(values > cutoff if upper else values < cutoff))
    # Live values drawn before the (r + 1)-th reference value, going from the extreme end inward.
    counts = np.arange(len(values) + 1)
    probabilities = nhypergeom.pmf(counts, len(ref) + len(values), len(values), reference_beyond + 1)
    # P(X >= k) for every k at once (scipy's sf sums the pmf again for each k, a thousand times slower here).
    p_values = np.clip(np.cumsum(probabilities[::-1])[::-1], 0.0, 1.0)
    rejected = counts[p_values <= level] if level is not None else counts[:0]
    return TailShift(cutoff, beyond, len(values), reference_beyond, len(ref), float(p_values[beyond]),
                     float(rejected[0] / len(values)) if len(rejected) else None)


# ---- prompt length ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LengthShift:
    psi: float
    ks_statistic: float
    p_value: float
    breach_at: float | None
    """The KS statistic the test rejects from at the level given (the asymptotic critical value), else None."""
    edges: list[float]
    """Inner bin edges (the reference deciles)."""
    reference_shares: list[float]
    live_shares: list[float]
    live: int
    reference_rows: int

    def to_dict(self) -> dict:
        return {"ks_statistic": self.ks_statistic, "p_value": self.p_value, "breach_at": self.breach_at,
                "psi": self.psi, "live": self.live, "reference_rows": self.reference_rows,
                "bins": {"edges": self.edges, "reference": self.reference_shares, "live": self.live_shares}}


def length_shift(reference: Sequence[float], live: Sequence[float], level: float | None = None) -> LengthShift:
    """The KS test of ``live`` against ``reference`` and the PSI over the reference deciles (both non-empty)."""
    edges = decile_edges(reference)
    reference_shares, live_shares = binned_shares(reference, edges), binned_shares(live, edges)
    test = ks_2samp(np.asarray(reference, dtype=float), np.asarray(live, dtype=float))
    n, m = len(live), len(reference)
    critical = float(np.sqrt(-np.log(level / 2) / 2 * (n + m) / (n * m))) if level is not None else None
    return LengthShift(psi(reference_shares, live_shares), float(test.statistic), float(test.pvalue),
                       critical if critical is not None and critical <= 1 else None, edges.tolist(),
                       reference_shares.tolist(), live_shares.tolist(), n, m)


# ---- label mix --------------------------------------------------------------------------------------------------


def label_shares(labels: Iterable[str], names: Sequence[str]) -> dict[str, float]:
    """The share of each of ``names`` among ``labels`` (0 for a name that never occurs)."""
    counts = Counter(labels)
    total = sum(counts.values())
    return {name: counts[name] / total if total else 0.0 for name in names}


def chi_square(live_counts: np.ndarray, pooled_counts: np.ndarray, live_total: int) -> np.ndarray:
    """Pearson's statistic of the 2 x K table whose first row is ``live_counts`` (one table per row of a 2-D array)
    and whose columns add up to ``pooled_counts`` (all positive)."""
    total = pooled_counts.sum()
    expected_live = pooled_counts * live_total / total
    expected_reference = pooled_counts - expected_live
    reference_counts = pooled_counts - live_counts
    return (((live_counts - expected_live) ** 2 / expected_live).sum(axis=-1)
            + ((reference_counts - expected_reference) ** 2 / expected_reference).sum(axis=-1))


@dataclass(frozen=True)
class LabelShift:
    statistic: float
    p_value: float
    breach_at: float | None
    """The statistic the test rejects from at the level given (a quantile of the permutations), else None."""
    psi: float
    reference_shares: dict[str, float]
    live_shares: dict[str, float]
    """Over the run's labels, then any label seen live only."""
    live: int
    reference_rows: int

    def to_dict(self) -> dict:
        return {"statistic": self.statistic, "p_value": self.p_value, "breach_at": self.breach_at, "psi": self.psi,
                "live": self.live, "reference_rows": self.reference_rows,
                "shares": {label: {"reference": self.reference_shares[label], "live": self.live_shares[label]}
                           for label in self.reference_shares}}


def label_shift(reference: Sequence[str], live: Sequence[str], names: Sequence[str] | None = None,
                level: float | None = None) -> LabelShift:
    """The permutation chi-square test of the ``live`` label mix against the ``reference`` one (see the module
    docstring) and its PSI. ``names``: the run's labels in their order; a label seen only live gets a bin of its
    own. Both non-empty."""
    order = list(dict.fromkeys([*(names or reference), *reference, *live]))
    reference_shares, live_shares = label_shares(reference, order), label_shares(live, order)
    live_counter, pooled_counter = Counter(live), Counter([*reference, *live])
    seen = [label for label in order if pooled_counter[label]]
    pooled = np.array([pooled_counter[label] for label in seen])
    observed = np.array([live_counter[label] for label in seen])
    if len(seen) < 2:  # one label on both sides: nothing can differ
        statistic, p_value, breach_at = 0.0, 1.0, None
    else:
        statistic = float(chi_square(observed, pooled, len(live)))
        draws = np.random.default_rng(PERMUTATION_SEED).multivariate_hypergeometric(pooled, len(live), PERMUTATIONS)
        permuted = chi_square(draws, pooled, len(live))
        p_value = float((1 + np.sum(permuted >= statistic - 1e-9)) / (1 + PERMUTATIONS))
        breach_at = float(np.quantile(permuted, 1 - level, method="higher")) if level is not None else None
    return LabelShift(statistic, p_value, breach_at, psi(list(reference_shares.values()), list(live_shares.values())),
                      reference_shares, live_shares, len(live), len(reference))


def percentiles(values: Sequence[float], points: Sequence[int]) -> dict[str, float | None]:
    """``{"p50": ..., "p95": ...}`` of ``values`` (linear interpolation); None for each when there are none."""
    if len(values) == 0:
        return {f"p{point}": None for point in points}
    found = np.percentile(np.asarray(values, dtype=float), list(points))
    return {f"p{point}": float(value) for point, value in zip(points, found)}
