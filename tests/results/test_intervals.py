"""Result intervals: Wilson against a value worked by hand, the bootstrap of a mean seeded and bounded."""

from __future__ import annotations

import numpy as np
import pytest

from tunesmith.results.intervals import bootstrap_mean_interval, wilson_interval


def test_wilson_interval_of_8_in_10_is_the_textbook_value():
    # (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n) with p = 0.8, n = 10, z = 1.95996.
    low, high = wilson_interval(8, 10, 0.95)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert wilson_interval(0, 0, 0.95) is None


def test_a_wider_confidence_gives_a_wider_wilson_interval():
    narrow, wide = wilson_interval(30, 40, 0.8), wilson_interval(30, 40, 0.99)
    assert wide[0] < narrow[0] < 0.75 < narrow[1] < wide[1]


def test_bootstrap_mean_interval_is_seeded_and_holds_the_mean():
    values = np.random.default_rng(1).normal(0.5, 1.0, size=200)
    first = bootstrap_mean_interval(values, 0.95, 1000, seed=3)
    assert first == bootstrap_mean_interval(values, 0.95, 1000, seed=3)
    assert first[0] < values.mean() < first[1]
    # The spread of a mean of 200 draws with sd 1 is about 1.96 * 1 / sqrt(200) = 0.14 each side.
    assert first[1] - first[0] == pytest.approx(2 * 1.96 / np.sqrt(200), rel=0.2)
    assert bootstrap_mean_interval([], 0.95, 1000, seed=0) is None
    assert bootstrap_mean_interval([2.0], 0.95, 100, seed=0) == [2.0, 2.0]
