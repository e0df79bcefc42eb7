"""The monitor's result as a terminal summary, one JSON object, or an HTML page with figures (`render_monitor`).

One `Document` serves the terminal and the page, so both say the same; the page adds the figures: each drift
check's figure over the windows with the line where it would breach (breached windows in red), traffic over the
windows with its thresholds, latency, prompt lengths live vs reference, requests over time.
"""

from __future__ import annotations

from datetime import timezone
from pathlib import Path

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
from tunesmith.json_files import dumps
from tunesmith.monitor.analysis import MonitorResult
from tunesmith.monitor.checks import DRIFT_CHECKS, FIGURES
from tunesmith.monitor.page_figures import (
    DRIFT_FIGURE_TITLES,
    check_over_windows_png,
    latency_png,
    prompt_lengths_png,
    requests_over_time_png,
    traffic_over_windows_png,
)
from tunesmith.monitor.request_log import parse_time
from tunesmith.text import count_of

NOT_MEASURED = "-"
CHECK_TITLES = {"novelty": "Novelty", "prompt_length": "Prompt length (tokens)", "labels": "Predicted labels",
                "confidence": "Confidence"}


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
    breaches = result.breaches
    breached = {breach["window"] for breach in breaches}
    verdict = (f"{count_of(len(breaches), 'breach')} in {count_of(len(breached), 'window')}" if breaches
               else "every threshold holds")
    subtitle = (f"{count_of(result.traffic['requests'], 'request')} in {count_of(len(result.windows), 'window')} "
                f"({result.window}"
                + (f", since {_moment(result.since)}" if result.since else "") + f"); {verdict}")
    sections = [_breaches(result), _traffic(result.traffic), _drift(result), _novel("Most novel requests",
                                                                                     result.most_novel)]
    if len(result.windows) > 1:
        sections.append(_windows(result))
    for window in result.windows:
        if window["index"] in breached or len(result.windows) == 1:
            sections.append(_window_detail(window, len(result.windows) > 1))
    if figures:
        sections.append(Section("Figures", _figures(result)))
    return Document(f"Monitor: {result.log_dir}", subtitle, sections)


def _share(value: float | None) -> str:
    return NOT_MEASURED if value is None else f"{value:.1%}"


def _seconds(value: float | None) -> str:
    if value is None:
        return NOT_MEASURED
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def _number(value: float | None) -> str:
    """A figure with 4 decimals, or 3 significant digits when it is smaller than that shows (a p-value)."""
    if value is None:
        return NOT_MEASURED
    return f"{value:.3g}" if 0 < abs(value) < 0.001 else format_value(value)


def _moment(text: str | None) -> str:
    return NOT_MEASURED if text is None else parse_time(text).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _window_name(index: int, start: str | None) -> str:
    return f"#{index + 1} ({_moment(start)})"


def _breaches(result: MonitorResult) -> Section:
    if not result.breaches:
        return Section("Breaches", [Text("none: every threshold that was judged holds")])
    rows = [[b["check"], _window_name(b["window"], b["start"]), _number(b["value"]), _number(b["p_value"]),
             _number(b["threshold"]), b["setting"]] for b in result.breaches]
    return Section("Breaches", [
        Table(["check", "window", "value", "p-value", "threshold", "setting"], rows),
        Text("A drift breach: the check's p-value is at or below its threshold (monitor.false_alarm_rate split over "
             "the checks measured in the window). A traffic breach: the value is beyond its threshold.")])


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
    return Section("Traffic (whole log)", blocks)


def _drift(result: MonitorResult) -> Section:
    who = f"run {result.run}" if result.run else "no run"
    served = f" (served as {result.model!r})" if result.model else ""
    reference = result.reference
    if "skipped" in reference:
        return Section("Drift", [Text(f"Against {who}{served}: not judged, {reference['skipped']}.")])
    sources = ", ".join(f"{rows} {split}" for split, rows in reference["sources"].items())
    rate = result.settings.false_alarm_rate
    return Section("Drift", [Text(
        f"Against {who}{served}: its reference of {count_of(reference['rows'], 'held-out row')} ({sources}). "
        + (f"A healthy window raises a drift breach with a chance of at most {rate:g} (monitor.false_alarm_rate); "
           f"windows of fewer than {result.settings.min_requests} answered requests are shown, not judged."
           if rate is not None else "monitor.false_alarm_rate is null: drift is shown, not judged."))])


def _novel(title: str, novel: list[dict]) -> Section:
    return Section(title, [_novel_table(novel) if novel else Text("none: no request record has a novelty score")])


def _novel_table(novel: list[dict]) -> Table:
    return Table(["request", "time", "novelty", "input"],
                 [[str(n["id"]), _moment(n["time"]), format_value(n["novelty"]),
                   NOT_MEASURED if n["input"] is None else n["input"]] for n in novel])


def _cell(part: dict) -> str:
    if "skipped" in part:
        return NOT_MEASURED
    figure = part["share"] if "share" in part else part.get("ks_statistic", part.get("statistic"))
    shown = _share(figure) if "share" in part else format_value(figure)
    return f"{shown} (p {_number(part['p_value'])})"


def _windows(result: MonitorResult) -> Section:
    rows = []
    for window in result.windows:
        traffic, drift = window["figures"]["traffic"], window["figures"]["drift"]
        checks = [_cell(drift[name]) if name in drift else NOT_MEASURED for name in DRIFT_CHECKS]
        status = ("breach: " + ", ".join(b["check"] for b in window["breaches"]) if window["breaches"]
                  else "ok" if drift.get("judged") else "not judged")
        rows.append([_window_name(window["index"], window["start"]), str(window["requests"]), str(window["answered"]),
                     _share(traffic["error_rate"]), *checks, status])
    return Section("Windows", [Table(
        ["window", "requests", "answered", "errors", "novelty tail", "length KS", "label chi-square",
         "low-confidence tail", "verdict"], rows)])


def _window_detail(window: dict, several: bool) -> Section:
    drift = window["figures"]["drift"]
    title = f"Window {_window_name(window['index'], window['start'])}" if several else "Drift checks"
    blocks: list = [Text(f"{_moment(window['start'])} to {_moment(window['end'])}: "
                         f"{count_of(window['requests'], 'request')}, {window['answered']} answered by the run's "
                         "model.")]
    if "skipped" in drift:
        blocks.append(Text(f"Drift: {drift['skipped']}."))
    else:
        if drift["not_judged"]:
            blocks.append(Text(f"Not judged: {drift['not_judged']}."))
        elif drift["level"] is not None:
            blocks.append(Text(f"Each of the {len(drift['checks'])} checks measured is judged at p <= "
                               f"{_number(drift['level'])}."))
        blocks += [_check_block(name, drift[name]) for name in DRIFT_CHECKS]
    if several and window["most_novel"]:
        blocks.append(_novel_table(window["most_novel"]))
    return Section(title, blocks)


def _check_block(name: str, part: dict):
    title = CHECK_TITLES[name]
    if "skipped" in part:
        return Text(f"{title}: skipped, {part['skipped']}.")
    if name == "labels":
        return Table(["label", "reference", "live"],
                     [[label, _share(share["reference"]), _share(share["live"])]
                      for label, share in part["shares"].items()],
                     f"{title} vs the reference's: chi-square {format_value(part['statistic'])}, p-value "
                     f"{_number(part['p_value'])}, PSI {format_value(part['psi'])} ({part['live']} live, "
                     f"{part['reference_rows']} reference)")
    if name == "prompt_length":
        return Facts([
            ("KS statistic / p-value", f"{format_value(part['ks_statistic'])} / {_number(part['p_value'])}"),
            ("breaches from KS statistic", _number(part["breach_at"])),
            ("PSI (reference deciles)", format_value(part["psi"])),
            ("live requests / reference rows", f"{part['live']} / {part['reference_rows']}"),
        ], f"{title}, live vs reference")
    side = "above" if name == "novelty" else "below"
    low, high = part["share_interval"]
    return Facts([
        (f"{side} the reference's cutoff {format_value(part['cutoff'])}",
         f"{part['beyond']} of {part['live']} ({_share(part['share'])}, 95% interval {_share(low)} to {_share(high)})"),
        ("reference share", f"{_share(part['reference_share'])} of {part['reference_rows']}"),
        ("p-value", _number(part["p_value"])),
        ("breaches from share", _share(part["breach_at"])),
    ], f"{title}: share {side} the reference's tail")


# ---- figures ----------------------------------------------------------------------------------------------------


def _figures(result: MonitorResult) -> list:
    series = result.series
    figures = []
    windows = result.windows
    if windows and "skipped" not in result.reference:
        for name in DRIFT_CHECKS:
            parts = [w["figures"]["drift"].get(name, {}) for w in windows]
            if all("skipped" in part for part in parts):
                continue
            points = [(w["index"], part[FIGURES[name]], part["breach_at"], bool(
                [b for b in w["breaches"] if b["check"] == name])) for w, part in zip(windows, parts)
                if "skipped" not in part]
            figures.append(Image(f"{name}.png", check_over_windows_png(name, points), DRIFT_FIGURE_TITLES[name]))
    if series.request_times:
        figures.append(Image("traffic.png", traffic_over_windows_png(windows, result.settings),
                             "error rate and p95 latency over the windows"))
    if series.latencies:
        figures.append(Image("latency.png", latency_png(series.latencies), "latency of answered requests"))
    if series.live_lengths and series.reference_lengths:
        figures.append(Image("prompt_lengths.png", prompt_lengths_png(series.reference_lengths, series.live_lengths),
                             "prompt length in tokens, live vs reference"))
    if series.request_times:
        figures.append(Image("requests.png", requests_over_time_png(series.request_times, series.failed_times),
                             "requests over time"))
    return figures or [Text("no figures: the log holds no requests")]
