"""The figures of the monitor's page (`tunesmith.monitor.page`): PNGs drawn with matplotlib's object API.

Each is drawn for a grid of two columns on the page (5.6 inches at 100 dpi, about the width of a column at
1366 px): its title is the page's (`tunesmith.document.Figures`), not drawn into the image.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tunesmith.config import MonitorConfig
from tunesmith.document.figures import figure_png

DRIFT_FIGURE_TITLES = {
    "novelty": "Novelty: share of requests above the reference's tail",
    "prompt_length": "Prompt length: KS statistic against the reference",
    "labels": "Predicted labels: chi-square against the reference's mix",
    "confidence": "Confidence: share of answers below the reference's tail",
}
"""What each drift check's figure shows; the page's title adds the window and `AXIS_UNITS`."""
AXIS_LABELS = {"novelty": "share above the tail", "prompt_length": "KS statistic", "labels": "chi-square",
               "confidence": "share below the tail"}
AXIS_UNITS = {"novelty": "share, 0 to 1", "prompt_length": "KS statistic, 0 to 1", "labels": "chi-square statistic",
              "confidence": "share, 0 to 1"}
BREACH_COLOR = "#c44e52"
WIDTH = 5.6
"""Inches: one column of the page's grid."""
REQUEST_BUCKETS = 30
"""Bars of the requests-over-time figure, over the log's span."""


def _axes(figure: Figure, xlabel: str, ylabel: str):
    axes = figure.add_subplot()
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    return axes


def _window_axis(axes, numbers) -> None:
    """Whole window numbers with half a window of margin: left to matplotlib, a single window gets ticks 0.95 to
    1.05 (and `MaxNLocator(integer=True)` falls back to fractions when fewer than two whole numbers are in view)."""
    first, last = int(min(numbers)), int(max(numbers))
    axes.set_xlim(first - 0.5, last + 0.5)
    if last - first < 12:
        axes.set_xticks(range(first, last + 1))
    else:
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def check_over_windows_png(name: str, points: list[tuple[int, float, float | None, bool]]) -> bytes:
    """One drift check's figure per window (``(index, value, breach_at, breached)``), the line where each window
    would breach (it depends on the window's size) dashed, breached windows in red."""
    numbers = np.array([index + 1 for index, _, _, _ in points])
    values = np.array([value for _, value, _, _ in points], dtype=float)
    figure = Figure(figsize=(WIDTH, 3.2), dpi=100)
    axes = _axes(figure, "window", AXIS_LABELS[name])
    _window_axis(axes, numbers)
    axes.plot(numbers, values, marker="o", color="#4c72b0", label="window")
    limits = [(n, at) for n, (_, _, at, _) in zip(numbers, points) if at is not None]
    if limits:
        axes.step([n for n, _ in limits], [at for _, at in limits], where="mid", linestyle="--", color=BREACH_COLOR,
                  linewidth=1, label="breaches from")
    breached = [i for i, (_, _, _, hit) in enumerate(points) if hit]
    if breached:
        axes.scatter(numbers[breached], values[breached], s=80, color=BREACH_COLOR, zorder=3, label="breached")
    axes.legend(loc="best")
    figure.tight_layout()
    return figure_png(figure)


def traffic_over_windows_png(windows: list[dict], settings: MonitorConfig) -> bytes:
    """Error rate and p95 latency per window, with ``monitor.max_error_rate`` and ``max_p95_latency_s``."""
    numbers = [w["index"] + 1 for w in windows]
    figure = Figure(figsize=(WIDTH, 4.8), dpi=100)
    errors, latency = figure.subplots(2, 1, sharex=True)
    for axes, values, threshold, label in (
            (errors, [w["figures"]["traffic"]["error_rate"] for w in windows], settings.max_error_rate, "error rate"),
            (latency, [w["figures"]["traffic"]["latency_s"]["p95"] for w in windows], settings.max_p95_latency_s,
             "p95 latency (s)")):
        axes.plot(numbers, [np.nan if v is None else v for v in values], marker="o", color="#4c72b0")
        if threshold is not None:
            axes.axhline(threshold, linestyle="--", color=BREACH_COLOR, linewidth=1, label="threshold")
            axes.legend(loc="best")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
    errors.set_ylim(bottom=0)  # a rate of 0 is the floor, not the middle of the axis
    latency.set_xlabel("window")
    if numbers:
        _window_axis(latency, numbers)
    figure.tight_layout()
    return figure_png(figure)


def latency_png(latencies: list[float]) -> bytes:
    figure = Figure(figsize=(WIDTH, 3.2), dpi=100)
    axes = _axes(figure, "latency (s)", "requests")
    axes.hist(latencies, bins=30, color="#4c72b0")
    for point, style in ((50, ":"), (95, "--"), (99, "-.")):
        value = float(np.percentile(latencies, point))
        axes.axvline(value, color=BREACH_COLOR, linestyle=style, linewidth=1, label=f"p{point} {value:.3g} s")
    axes.legend(loc="best")
    figure.tight_layout()
    return figure_png(figure)


def prompt_lengths_png(reference: list[int], live: list[int]) -> bytes:
    """Share of prompts per length bin, on bins shared by both, so samples of different sizes compare by shape."""
    edges = np.histogram_bin_edges(np.concatenate([reference, live]).astype(float), bins=30)
    figure = Figure(figsize=(WIDTH, 3.2), dpi=100)
    axes = _axes(figure, "prompt tokens", "share of prompts")
    for name, values in (("reference", reference), ("live", live)):
        counts, _ = np.histogram(values, bins=edges)
        axes.stairs(counts / len(values), edges, label=f"{name} ({len(values):,})", linewidth=1.4)
    axes.legend(loc="best")
    figure.tight_layout()
    return figure_png(figure)


def requests_over_time_png(times: list[float], failed: list[float]) -> bytes:
    """Requests per time bucket (`REQUEST_BUCKETS` over the log's span), failed ones on top in red."""
    end = max(times) or 1.0
    edges = np.linspace(0.0, end, REQUEST_BUCKETS + 1)
    unit, scale = ("min", 60.0) if end >= 600 else ("s", 1.0)
    figure = Figure(figsize=(WIDTH, 3.2), dpi=100)
    axes = _axes(figure, f"time since the first request ({unit})", "requests")
    answered_counts, _ = np.histogram(times, bins=edges)
    failed_counts, _ = np.histogram(failed, bins=edges)
    axes.stairs(answered_counts, edges / scale, label="all", fill=True, color="#4c72b0", alpha=0.7)
    if failed:
        axes.stairs(failed_counts, edges / scale, label="failed", fill=True, color=BREACH_COLOR, alpha=0.9)
    axes.legend(loc="best")
    figure.tight_layout()
    return figure_png(figure)
