"""The figures of the monitor's page (`tunesmith.monitor.page`): PNGs drawn with matplotlib's object API."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from tunesmith.config import MonitorConfig
from tunesmith.document.figures import figure_png

DRIFT_FIGURE_TITLES = {
    "novelty": "share of requests above the reference's novelty tail, per window",
    "prompt_length": "prompt length KS statistic against the reference, per window",
    "labels": "label-mix chi-square statistic against the reference, per window",
    "confidence": "share of answers below the reference's confidence tail, per window",
}
AXIS_LABELS = {"novelty": "share above the tail", "prompt_length": "KS statistic", "labels": "chi-square",
               "confidence": "share below the tail"}
BREACH_COLOR = "#c44e52"


def _axes(figure: Figure, xlabel: str, ylabel: str):
    axes = figure.add_subplot()
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    return axes


def check_over_windows_png(name: str, points: list[tuple[int, float, float | None, bool]]) -> bytes:
    """One drift check's figure per window (``(index, value, breach_at, breached)``), the line where each window
    would breach (it depends on the window's size) dashed, breached windows in red."""
    numbers = np.array([index + 1 for index, _, _, _ in points])
    values = np.array([value for _, value, _, _ in points], dtype=float)
    figure = Figure(figsize=(7.0, 3.2), dpi=100)
    axes = _axes(figure, "window", AXIS_LABELS[name])
    axes.set_title(DRIFT_FIGURE_TITLES[name], fontsize=10)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
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
    figure = Figure(figsize=(7.0, 4.8), dpi=100)
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
    latency.set_xlabel("window")
    latency.xaxis.set_major_locator(MaxNLocator(integer=True))
    figure.tight_layout()
    return figure_png(figure)


def latency_png(latencies: list[float]) -> bytes:
    figure = Figure(figsize=(7.0, 3.2), dpi=100)
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
    figure = Figure(figsize=(7.0, 3.2), dpi=100)
    axes = _axes(figure, "prompt tokens", "share of prompts")
    for name, values in (("reference", reference), ("live", live)):
        counts, _ = np.histogram(values, bins=edges)
        axes.stairs(counts / len(values), edges, label=f"{name} ({len(values):,})", linewidth=1.4)
    axes.legend(loc="best")
    figure.tight_layout()
    return figure_png(figure)


def requests_over_time_png(times: list[float], failed: list[float]) -> bytes:
    """Requests per time bucket (30 buckets over the log's span), failed ones on top in red."""
    end = max(times) or 1.0
    edges = np.linspace(0.0, end, 31)
    unit, scale = ("min", 60.0) if end >= 600 else ("s", 1.0)
    figure = Figure(figsize=(7.0, 3.2), dpi=100)
    axes = _axes(figure, f"time since the first request ({unit})", "requests")
    answered_counts, _ = np.histogram(times, bins=edges)
    failed_counts, _ = np.histogram(failed, bins=edges)
    axes.stairs(answered_counts, edges / scale, label="all", fill=True, color="#4c72b0", alpha=0.7)
    if failed:
        axes.stairs(failed_counts, edges / scale, label="failed", fill=True, color=BREACH_COLOR, alpha=0.9)
    axes.legend(loc="best")
    figure.tight_layout()
    return figure_png(figure)
