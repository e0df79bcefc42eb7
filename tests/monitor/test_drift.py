"""Drift statistics: PSI over training deciles and over labels, the KS test, percentiles."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tunesmith.monitor.drift import (
    EPSILON,
    binned_shares,
    decile_edges,
    label_drift,
    length_drift,
    percentiles,
    psi,
)


def test_psi_of_identical_shares_is_zero_and_grows_with_the_shift():
    shares = [0.1] * 10
    assert psi(shares, shares) == 0.0
    moved = [0.05] * 5 + [0.15] * 5
    assert 0 < psi(shares, moved) < psi(shares, [0.01] * 5 + [0.19] * 5)


def test_psi_matches_its_formula_and_floors_empty_bins():
    train, live = [0.5, 0.5, 0.0], [0.25, 0.5, 0.25]
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.25 - EPSILON) * math.log(0.25 / EPSILON)
    assert psi(train, live) == pytest.approx(expected)


def test_deciles_of_repeated_values_make_one_edge():
    assert decile_edges([5] * 50 + [9] * 50).tolist() == [5.0, 9.0]
    edges = decile_edges(list(range(100)))
    assert len(edges) == 9
    shares = binned_shares(list(range(100)), edges)
    assert len(shares) == 10 and shares.sum() == pytest.approx(1.0) and np.allclose(shares, 0.1, atol=0.011)


def test_length_drift_of_the_same_sample_is_quiet():
    lengths = list(np.random.default_rng(0).integers(10, 200, size=500))
    found = length_drift(lengths, lengths)
    assert found.psi == pytest.approx(0.0, abs=1e-12)
    assert found.ks_statistic == 0.0 and found.ks_pvalue == pytest.approx(1.0)


def test_length_drift_of_a_similar_sample_stays_under_the_thresholds():
    rng = np.random.default_rng(1)
    found = length_drift(rng.normal(100, 15, size=2000), rng.normal(100, 15, size=400))
    assert found.psi < 0.1 and found.ks_pvalue > 0.01


def test_length_drift_of_longer_prompts_is_flagged():
    rng = np.random.default_rng(2)
    found = length_drift(rng.normal(100, 15, size=2000), rng.normal(160, 15, size=400))
    assert found.psi > 0.2 and found.ks_pvalue < 1e-6 and found.ks_statistic > 0.8
    assert found.live_shares[-1] > 0.9  # nearly every live prompt lies above the training's top decile
    assert found.to_dict()["bins"]["edges"] == found.edges


def test_label_drift_shares_and_shift():
    train = ["ham"] * 80 + ["spam"] * 20
    same = label_drift(train, ["ham"] * 8 + ["spam"] * 2, ["ham", "spam"])
    assert same.psi == pytest.approx(0.0, abs=1e-12)
    assert same.train_shares == {"ham": 0.8, "spam": 0.2} and same.live_shares == {"ham": 0.8, "spam": 0.2}
    shifted = label_drift(train, ["ham"] * 2 + ["spam"] * 8, ["ham", "spam"])
    assert shifted.psi > 0.2
    assert shifted.to_dict()["shares"]["spam"] == {"train": 0.2, "live": 0.8}


def test_a_label_seen_only_live_gets_its_own_bin():
    found = label_drift(["a", "b"] * 10, ["a", "b", "c", "c"])
    assert list(found.live_shares) == ["a", "b", "c"]
    assert found.train_shares["c"] == 0.0 and found.live_shares["c"] == 0.5 and found.psi > 0.2


def test_percentiles():
    assert percentiles(list(range(101)), (50, 95, 99)) == {"p50": 50.0, "p95": 95.0, "p99": 99.0}
    assert percentiles([], (50, 95)) == {"p50": None, "p95": None}
