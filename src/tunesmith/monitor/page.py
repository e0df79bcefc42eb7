"""The monitor's result as a terminal summary, one JSON object, or an HTML page with figures (`render_monitor`).

One `Document` serves the terminal and the page, so both say the same; the page adds the figures (latency,
prompt lengths live vs training, label shares live vs training, requests over time).
"""

from __future__ import annotations

from datetime import timezone
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from tunesmith.atomic import write_atomic
from tunesmith.document import (
    Document,
    Facts,
    Image,
    Section,
    Table,
    Text,
    format_duration,
    format_value,
    render_html,
    render_text,
)
from tunesmith.document.figures import figure_png
from tunesmith.json_files import dumps
from tunesmith.monitor.analysis import MonitorResult, Series
from tunesmith.monitor.request_log import parse_time
from tunesmith.text import count_of

NOT_MEASURED = "-"


def render_monitor(result: MonitorResult, as_json: bool = False, html: str | Path | None = None) -> str:
    """What `tunesmith monitor` prints: the summary, or with ``as_json`` one JSON object. With ``html`` the page
    is written there too (replacing an earlier one: a cron job rewrites it each time)."""
    if html is not None:
        write_atomic(html, render_html(monitor_document(result, figures=True)))
    if as_json:
        return dumps(result.to_dict(), indent=1)
    text = render_text(monitor_document(result))
    return f"{text}\n\npage: {html}" if html is not None else text


def monitor_document(result: MonitorResult, figures: bool = False) -> Document:
    traffic, drift = result.traffic, result.drift
    verdict = (f"{count_of(len(result.breaches), 'threshold')} breached" if result.breaches
               else "every threshold holds")
    subtitle = f"{count_of(traffic['requests'], 'request')}; {verdict}"
    sections = [_breaches(result), _traffic(traffic), _drift(drift)]
    if figures:
        sections.append(Section("Figures", _figures(result.series, drift)))
    return Document(f"Monitor: {result.log_dir}", subtitle, sections)


def _share(value: float | None) -> str:
    return NOT_MEASURED if value is None else f"{value:.1%}"


def _seconds(value: float | None) -> str:
    if value is None:
        return NOT_MEASURED
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _number(value: float | None) -> str:
    """A figure with 4 decimals, or 3 significant digits when it is smaller than that shows (a KS p-value)."""
    if value is None:
        return NOT_MEASURED
    return f"{value:.3g}" if 0 < abs(value) < 0.001 else format_value(value)


def _moment(text: str | None) -> str:
    return NOT_MEASURED if text is None else parse_time(text).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _breaches(result: MonitorResult) -> Section:
    if not result.breaches:
        return Section("Breaches", [Text("none: every threshold that was judged holds")])
    rows = [[b["name"], _number(b["value"]), _number(b["threshold"]), b["setting"]] for b in result.breaches]
    return Section("Breaches", [Table(["figure", "value", "threshold", "setting"], rows)])


def _traffic(traffic: dict) -> Section:
    latency, ttft = traffic["latency_s"], traffic["ttft_s"]
    span = traffic["span_s"]
    rate = traffic["requests_per_minute"]
    blocks: list = [Facts([
        ("requests", str(traffic["requests"])),
        ("time span", NOT_MEASURED if span is None else
         f"{_moment(traffic['first'])} to {_moment(traffic['last'])} ({format_duration(span)})"),
        ("requests per minute", NOT_MEASURED if rate is None else f"{rate:.2f}"),
        ("errors (status >= 400)", f"{traffic['errors']} ({_share(traffic['error_rate'])})"),
        ("server errors (5xx)", f"{traffic['server_errors']} ({_share(traffic['server_error_rate'])})"),
        ("latency p50 / p95 / p99", " / ".join(_seconds(latency[key]) for key in ("p50", "p95", "p99"))),
        ("time to first token p50 / p95", " / ".join(_seconds(ttft[key]) for key in ("p50", "p95"))),
        ("prompt / completion tokens", f"{traffic['prompt_tokens']:,} / {traffic['completion_tokens']:,}"),
    ])]
    if traffic["by_model"]:
        blocks.append(Table(["model", "requests"], [[name, str(n)] for name, n in traffic["by_model"].items()]))
        blocks.append(Table(["route", "requests"], [[name, str(n)] for name, n in traffic["by_route"].items()]))
    feedback = traffic["feedback"]
    blocks.append(Facts([(key, str(feedback[key])) for key in ("up", "down", "corrections", "labels")],
                        f"Feedback ({count_of(feedback['requests'], 'request')} rated or corrected)"))
    shadow = traffic["shadow"]
    if shadow is not None:
        blocks.append(Facts([
            ("answers", str(shadow["answers"])),
            ("same label", f"{_share(shadow['label_agreement'])} of {shadow['labels_compared']}"),
            ("same answer (exact)", f"{_share(shadow['answer_agreement'])} of {shadow['answers_compared']}"),
            ("latency p50 / p95", " / ".join(_seconds(shadow["latency_s"][key]) for key in ("p50", "p95"))),
        ], f"Shadow ({', '.join(shadow['models'])})"))
    return Section("Traffic", blocks)


def _drift(drift: dict) -> Section:
    who = f"run {drift['run']}" if drift["run"] else "no run"
    blocks: list = [Text(f"{count_of(drift['requests'], 'answered request')} of {who}"
                         + (f" (served as {drift['model']!r})" if drift["model"] else "") + ".")]
    if drift["not_judged"]:
        blocks.append(Text(f"Not judged: {drift['not_judged']}."))
    length = drift["prompt_length"]
    blocks.append(_skipped("Prompt length", length) or Facts([
        ("PSI (training deciles)", format_value(length["psi"])),
        ("KS statistic / p-value", f"{format_value(length['ks_statistic'])} / {_number(length['ks_pvalue'])}"),
        ("training rows / live requests", f"{length['train_rows']} / {length['live_requests']}"),
    ], "Prompt length (tokens), live vs training"))
    labels = drift["labels"]
    blocks.append(_skipped("Predicted labels", labels) or Table(
        ["label", "training", "live"],
        [[label, _share(share["train"]), _share(share["live"])] for label, share in labels["shares"].items()],
        f"Predicted labels vs training labels: PSI {format_value(labels['psi'])}"))
    unfamiliar = drift["unfamiliar"]
    blocks.append(_skipped("Unfamiliar inputs", unfamiliar) or Facts([
        ("unfamiliar", f"{unfamiliar['unfamiliar']} of {unfamiliar['inputs']} ({_share(unfamiliar['share'])})"),
        ("similarity below", format_value(unfamiliar["threshold"])),
    ], "Unfamiliar inputs (no training input this similar)"))
    if "examples" in unfamiliar and unfamiliar["examples"]:
        blocks.append(Table(["request", "input"], [[str(e["id"]), e["input"]] for e in unfamiliar["examples"]]))
    low = drift["low_confidence"]
    blocks.append(_skipped("Low-confidence predictions", low) or Facts([
        ("low confidence", f"{low['low']} of {low['classified']} ({_share(low['share'])})"),
        ("probability below", format_value(low["threshold"])),
    ], "Low-confidence predictions"))
    return Section("Drift against the training data", blocks)


def _skipped(what: str, part: dict) -> Text | None:
    return Text(f"{what}: skipped, {part['skipped']}.") if "skipped" in part else None


# ---- figures ----------------------------------------------------------------------------------------------------


def _figures(series: Series, drift: dict) -> list:
    figures = []
    if series.latencies:
        figures.append(Image("latency.png", latency_png(series.latencies), "latency of answered requests"))
    if series.live_lengths and series.train_lengths:
        figures.append(Image("prompt_lengths.png", prompt_lengths_png(series.train_lengths, series.live_lengths),
                             "prompt length in tokens, live vs training"))
    if "shares" in drift["labels"]:
        figures.append(Image("labels.png", label_shares_png(drift["labels"]["shares"]),
                             "share of each label, live predictions vs training"))
    if series.request_times:
        figures.append(Image("requests.png", requests_over_time_png(series.request_times, series.failed_times),
                             "requests over time"))
    return figures or [Text("no figures: the log holds no requests")]


def _axes(figure: Figure, xlabel: str, ylabel: str):
    axes = figure.add_subplot()
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    return axes


def latency_png(latencies: list[float]) -> bytes:
    figure = Figure(figsize=(7.0, 3.2), dpi=100)
    axes = _axes(figure, "latency (s)", "requests")
    axes.hist(latencies, bins=30, color="#4c72b0")
    for point, style in ((50, ":"), (95, "--"), (99, "-.")):
        value = float(np.percentile(latencies, point))
        axes.axvline(value, color="#c44e52", linestyle=style, linewidth=1, label=f"p{point} {_seconds(value)}")
    axes.legend(loc="best")
    figure.tight_layout()
    return figure_png(figure)


def prompt_lengths_png(train: list[int], live: list[int]) -> bytes:
    """Share of prompts per length bin, on bins shared by both, so samples of different sizes compare by shape."""
    edges = np.histogram_bin_edges(np.concatenate([train, live]).astype(float), bins=30)
    figure = Figure(figsize=(7.0, 3.2), dpi=100)
    axes = _axes(figure, "prompt tokens", "share of prompts")
    for name, values in (("training", train), ("live", live)):
        counts, _ = np.histogram(values, bins=edges)
        axes.stairs(counts / len(values), edges, label=f"{name} ({len(values):,})", linewidth=1.4)
    axes.legend(loc="best")
    figure.tight_layout()
    return figure_png(figure)


def label_shares_png(shares: dict[str, dict[str, float]]) -> bytes:
    labels = list(shares)
    positions = np.arange(len(labels))
    figure = Figure(figsize=(max(4.0, 1.0 + 0.8 * len(labels)), 3.2), dpi=100)
    axes = _axes(figure, "label", "share")
    axes.bar(positions - 0.2, [shares[label]["train"] for label in labels], width=0.4, label="training")
    axes.bar(positions + 0.2, [shares[label]["live"] for label in labels], width=0.4, label="live")
    axes.set_xticks(positions, labels, rotation=30, ha="right")
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
        axes.stairs(failed_counts, edges / scale, label="failed", fill=True, color="#c44e52", alpha=0.9)
    axes.legend(loc="best")
    figure.tight_layout()
    return figure_png(figure)
