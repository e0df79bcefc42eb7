"""Drift statistics: the tail-share test, the KS test with PSI over reference deciles, the permutation chi-square
of the label mix, percentiles. Each test's real false-alarm rate is measured on seeded healthy samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest, nhypergeom

from tunesmith.monitor.drift import (
    EPSILON,
    binned_shares,
    decile_edges,
    label_shift,
    length_shift,
    percentiles,
    psi,
    share_interval,
    tail_shift,
)


def _at_most(rate: float, found: int, trials: int) -> bool:
    """``found`` of ``trials`` is within what a rate of at most ``rate`` gives 999 times in 1000."""
    return binomtest(found, trials, rate, alternative="greater").pvalue > 0.001


def test_psi_of_identical_shares_is_zero_and_grows_with_the_shift():
    shares = [0.1] * 10
    assert psi(shares, shares) == 0.0
    moved = [0.05] * 5 + [0.15] * 5
    assert 0 < psi(shares, moved) < psi(shares, [0.01] * 5 + [0.19] * 5)


def test_psi_matches_its_formula_and_floors_empty_bins():
    reference, live = [0.5, 0.5, 0.0], [0.25, 0.5, 0.25]
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.25 - EPSILON) * math.log(0.25 / EPSILON)
    assert psi(reference, live) == pytest.approx(expected)


def test_deciles_of_repeated_values_make_one_edge():
    assert decile_edges([5] * 50 + [9] * 50).tolist() == [5.0, 9.0]
    edges = decile_edges(list(range(100)))
    assert len(edges) == 9
    shares = binned_shares(list(range(100)), edges)
    assert len(shares) == 10 and shares.sum() == pytest.approx(1.0) and np.allclose(shares, 0.1, atol=0.011)


def test_share_interval_is_wilsons():
    for count, total in ((0, 50), (3, 50), (50, 50), (7, 13)):
        expected = binomtest(count, total).proportion_ci(0.95, method="wilson")
        assert share_interval(count, total) == pytest.approx([expected.low, expected.high])


# ---- tail shares ------------------------------------------------------------------------------------------------


def test_tail_shift_counts_beyond_the_reference_percentile_and_its_p_value_is_the_negative_hypergeometric_tail():
    reference = np.arange(1, 101) / 100  # 0.01 ... 1.00: the 95th percentile is 0.95, 5 values above it
    found = tail_shift(reference, [0.5, 0.96, 0.97, 0.99, 0.2], tail=0.05, upper=True, level=0.01)
    assert (found.cutoff, found.reference_beyond, found.beyond, found.live) == (0.95, 5, 3, 5)
    assert found.share == 0.6
    assert found.p_value == pytest.approx(nhypergeom(105, 5, 6).sf(2))
    low = tail_shift(reference, [0.01, 0.02, 0.5], tail=0.05, upper=False)
    assert (low.cutoff, low.reference_beyond, low.beyond) == (0.05, 4, 2)  # strictly below the 5th percentile
    assert low.breach_at is None  # no level given
    assert set(found.to_dict()) >= {"share", "share_interval", "p_value", "breach_at", "cutoff", "reference_share"}


def test_breach_at_is_the_smallest_share_the_test_rejects():
    rng = np.random.default_rng(0)
    reference = rng.random(1000)
    found = tail_shift(reference, rng.random(50), tail=0.05, upper=True, level=0.0025)
    at = round(found.breach_at * 50)
    just_below = tail_shift(reference, [2.0] * (at - 1) + [0.0] * (51 - at), 0.05, True, 0.0025)
    at_line = tail_shift(reference, [2.0] * at + [0.0] * (50 - at), 0.05, True, 0.0025)
    assert just_below.p_value > 0.0025 >= at_line.p_value


@pytest.mark.parametrize("upper", [True, False])
def test_the_tail_test_holds_its_level_on_healthy_windows_of_50(upper):
    """Each trial draws a fresh reference (the cutoff is itself a sample percentile) and a live window of 50 from
    one distribution: the test rejects at most as often as its level."""
    rng = np.random.default_rng(1)
    trials, level = 2000, 0.05
    rejected = sum(tail_shift(rng.random(500), rng.random(50), 0.05, upper).p_value <= level for _ in range(trials))
    assert _at_most(level, rejected, trials)
    assert rejected > trials * level / 3  # and is not uselessly cautious


def test_more_live_values_beyond_the_tail_are_flagged():
    rng = np.random.default_rng(2)
    found = tail_shift(rng.random(1000), rng.uniform(0.9, 1.0, 50), tail=0.05, upper=True, level=0.0025)
    assert found.share > 0.3 and found.p_value < 1e-10 and found.share >= found.breach_at


# ---- prompt length ----------------------------------------------------------------------------------------------


def test_length_shift_of_the_same_sample_is_quiet():
    lengths = list(np.random.default_rng(0).integers(10, 200, size=500))
    found = length_shift(lengths, lengths)
    assert found.psi == pytest.approx(0.0, abs=1e-12)
    assert found.ks_statistic == 0.0 and found.p_value == pytest.approx(1.0)


def test_length_shift_of_longer_prompts_is_flagged():
    rng = np.random.default_rng(2)
    found = length_shift(rng.normal(100, 15, size=2000), rng.normal(160, 15, size=400), level=0.0025)
    assert found.psi > 0.2 and found.p_value < 1e-6 and found.ks_statistic > 0.8 > found.breach_at
    assert found.live_shares[-1] > 0.9  # nearly every live prompt lies above the reference's top decile
    assert found.to_dict()["bins"]["edges"] == found.edges


# ---- label mix --------------------------------------------------------------------------------------------------


def test_label_shift_shares_and_shift():
    reference = ["ham"] * 80 + ["spam"] * 20
    same = label_shift(reference, ["ham"] * 8 + ["spam"] * 2, ["ham", "spam"])
    assert same.psi == pytest.approx(0.0, abs=1e-12) and same.statistic == pytest.approx(0.0)
    assert same.p_value == 1.0
    assert same.reference_shares == {"ham": 0.8, "spam": 0.2} and same.live_shares == {"ham": 0.8, "spam": 0.2}
    shifted = label_shift(reference, ["ham"] * 10 + ["spam"] * 40, ["ham", "spam"], level=0.0025)
    assert shifted.p_value < 0.0025 and shifted.statistic > shifted.breach_at
    assert shifted.to_dict()["shares"]["spam"] == {"reference": 0.2, "live": 0.8}


def test_a_label_seen_only_live_gets_its_own_bin():
    found = label_shift(["a", "b"] * 10, ["a", "b", "c", "c"])
    assert list(found.live_shares) == ["a", "b", "c"]
    assert found.reference_shares["c"] == 0.0 and found.live_shares["c"] == 0.5 and found.psi > 0.2


def test_one_label_on_both_sides_cannot_differ():
    assert label_shift(["ham"] * 30, ["ham"] * 5, ["ham", "spam"]).p_value == 1.0


def test_the_label_test_holds_its_level_on_small_windows_with_rare_labels():
    """Expected counts of 1.5 and 3.5 in a window of 50, where the chi-square distribution would be wrong."""
    rng = np.random.default_rng(3)
    trials, level, shares = 400, 0.1, [0.9, 0.07, 0.03]
    rejected = sum(label_shift(list(rng.choice(["a", "b", "c"], 1000, p=shares)),
                               list(rng.choice(["a", "b", "c"], 50, p=shares))).p_value <= level
                   for _ in range(trials))
    assert _at_most(level, rejected, trials)


def test_percentiles():
    assert percentiles(list(range(101)), (50, 95, 99)) == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
    assert percentiles([], (50, 95)) == {"p50": None, "p95": None}
