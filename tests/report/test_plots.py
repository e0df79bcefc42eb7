"""The report's figures: PNG bytes, deterministic."""

from __future__ import annotations

from tunesmith.report.plots import (
    loss_curve_figure,
    loss_curve_png,
    loss_scale,
    reliability_diagram_png,
    token_length_histogram_png,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
EDGES = [9.0, 40.0, 71.0, 102.0, 133.0, 164.0, 195.0]


def test_histogram_png_is_drawn_per_split():
    png = token_length_histogram_png({"train": {"edges": EDGES, "counts": [1, 2, 3, 2, 1, 0]},
                                      "test": {"edges": EDGES, "counts": [0, 0, 0, 0, 0, 0]}}, max_length=128)
    assert png.startswith(PNG_MAGIC) and len(png) > 5_000
    assert png == token_length_histogram_png({"train": {"edges": EDGES, "counts": [1, 2, 3, 2, 1, 0]},
                                              "test": {"edges": EDGES, "counts": [0, 0, 0, 0, 0, 0]}}, max_length=128)


def test_loss_curve_is_a_png_with_or_without_validation():
    with_validation = loss_curve_png([(1, 2.0), (2, 1.5)], [(2, 1.7)], best_step=2)
    assert with_validation.startswith(PNG_MAGIC)
    assert loss_curve_png([(1, 2.0), (2, 1.5)], []).startswith(PNG_MAGIC)


def test_a_loss_that_falls_from_9_to_near_0_is_drawn_on_a_log_axis():
    """After a first step at 9, a linear axis leaves the rest of the run and its validation points on the floor."""
    train = [(step, 9.0 / step ** 1.5) for step in range(1, 201)]
    validation = [(100, 0.05), (200, 0.016)]
    axes = loss_curve_figure(train, validation, best_step=200).axes[0]
    assert axes.get_yscale() == "log" and axes.get_ylabel() == "loss (log scale)"
    low, high = axes.get_ylim()
    assert low < 0.016 and high > 9.0  # every point inside the plot
    assert loss_scale([2.0, 1.5, 1.7]) == "linear"  # a narrow range reads better on a linear axis
    assert loss_scale([9.0, 0.0, 0.5]) == "linear"  # a zero has no logarithm
    assert loss_scale([]) == "linear"
    assert loss_curve_figure([(1, 2.0), (2, 1.5)], [(2, 1.7)]).axes[0].get_yscale() == "linear"


def test_reliability_diagram_draws_before_and_after_and_skips_empty_bins():
    empty = {"count": 0, "confidence": None, "accuracy": None}
    before = [{**empty, "low": 0.8, "high": 0.9}, {"low": 0.9, "high": 1.0, "count": 9, "confidence": 0.98,
                                                   "accuracy": 0.8}]
    after = [{"low": 0.8, "high": 0.9, "count": 4, "confidence": 0.85, "accuracy": 0.75},
             {"low": 0.9, "high": 1.0, "count": 5, "confidence": 0.93, "accuracy": 0.8}]
    png = reliability_diagram_png([("before", before), ("after", after)], rows=9)
    assert png.startswith(PNG_MAGIC) and png == reliability_diagram_png([("before", before), ("after", after)], 9)
