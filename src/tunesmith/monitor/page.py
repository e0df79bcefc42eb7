"""The monitor's result as a terminal summary, one JSON object, or an HTML page with figures (`render_monitor`).

One `Document` serves the terminal and the page, so both say the same; the page adds the figures: each drift
check's figure over the windows with the line where it would breach (breached windows in red), traffic over the
windows with its thresholds, latency, prompt lengths live vs reference, requests over time. Each part is a section
of its own, so every heading runs the page's width (a caption over a narrow table wraps into a column of a few
words); the figures are one grid (`Figures`) below them, each under a title that says what it shows, over which
window and in which unit.
"""

from __future__ import annotations

from datetime import timezone
from pathlib import Path

from tunesmith.atomic import write_atomic
from tunesmith.document import (
    Document,
    Facts,
    Figures,
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
    AXIS_UNITS,
    DRIFT_FIGURE_TITLES,
    REQUEST_BUCKETS,
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
    sections = [_breaches(result), _traffic(result.traffic), *_shadow(result.traffic["shadow"]), _drift(result),
                _novel("Most novel requests", result.most_novel)]
    if len(result.windows) > 1:
        sections.append(_windows(result))
    for window in result.windows:
        if window["index"] in breached or len(result.windows) == 1:
            sections += _window_detail(window, len(result.windows) > 1)
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
    feedback = traffic["feedback"]
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
        ("feedback", f"{count_of(feedback['requests'], 'request')} rated or corrected: "
                     + ", ".join(f"{feedback[key]} {key}" for key in ("up", "down", "corrections", "labels"))),
    ])]
    if traffic["by_model"]:
        blocks.append(Table(["model", "requests"], [[name, str(n)] for name, n in traffic["by_model"].items()]))
        blocks.append(Table(["route", "requests"], [[name, str(n)] for name, n in traffic["by_route"].items()]))
    return Section("Traffic (whole log)", blocks)


def _shadow(shadow: dict | None) -> list[Section]:
    if shadow is None:
        return []
    return [Section(f"Shadow ({', '.join(shadow['models'])})", [Facts([
        ("answers", str(shadow["answers"])),
        ("same label", f"{_share(shadow['label_agreement'])} of {shadow['labels_compared']}"),
        ("same answer (exact)", f"{_share(shadow['answer_agreement'])} of {shadow['answers_compared']}"),
        ("latency p50 / p95", " / ".join(_seconds(shadow["latency_s"][key]) for key in ("p50", "p95"))),
    ])])]


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


def _window_detail(window: dict, several: bool) -> list[Section]:
    """The window's drift: what was judged, then a section per check measured (its title names the window when
    there are several)."""
    drift = window["figures"]["drift"]
    blocks: list = [Text(f"{_moment(window['start'])} to {_moment(window['end'])}: "
                         f"{count_of(window['requests'], 'request')}, {window['answered']} answered by the run's "
                         "model.")]
    checks: list[Section] = []
    if "skipped" in drift:
        blocks.append(Text(f"Drift: {drift['skipped']}."))
    else:
        if drift["not_judged"]:
            blocks.append(Text(f"Not judged: {drift['not_judged']}."))
        elif drift["level"] is not None:
            blocks.append(Text(f"Each of the {len(drift['checks'])} checks measured is judged at p <= "
                               f"{_number(drift['level'])}."))
        for name in DRIFT_CHECKS:
            if "skipped" in drift[name]:
                blocks.append(Text(f"{CHECK_TITLES[name]}: skipped, {drift[name]['skipped']}."))
            else:
                title, check_blocks = _check_blocks(name, drift[name])
                checks.append(Section(f"{title}, window #{window['index'] + 1}" if several else title, check_blocks))
    if several and window["most_novel"]:
        blocks.append(_novel_table(window["most_novel"]))
    title = f"Window {_window_name(window['index'], window['start'])}" if several else "Drift checks"
    return [Section(title, blocks), *checks]


def _check_blocks(name: str, part: dict) -> tuple[str, list]:
    """A measured drift check: its section title and blocks."""
    title = CHECK_TITLES[name]
    if name == "labels":
        return f"{title} vs the reference's", [
            Facts([("chi-square / p-value", f"{format_value(part['statistic'])} / {_number(part['p_value'])}"),
                   ("PSI", format_value(part["psi"])),
                   ("live answers / reference rows", f"{part['live']} / {part['reference_rows']}")]),
            Table(["label", "reference", "live"], [[label, _share(share["reference"]), _share(share["live"])]
                                                   for label, share in part["shares"].items()])]
    if name == "prompt_length":
        return f"{title}, live vs reference", [Facts([
            ("KS statistic / p-value", f"{format_value(part['ks_statistic'])} / {_number(part['p_value'])}"),
            ("breaches from KS statistic", _number(part["breach_at"])),
            ("PSI (reference deciles)", format_value(part["psi"])),
            ("live requests / reference rows", f"{part['live']} / {part['reference_rows']}"),
        ])]
    side = "above" if name == "novelty" else "below"
    low, high = part["share_interval"]
    return f"{title}: share {side} the reference's tail", [Facts([
        (f"{side} the reference's cutoff {format_value(part['cutoff'])}",
         f"{part['beyond']} of {part['live']} ({_share(part['share'])}, 95% interval {_share(low)} to {_share(high)})"),
        ("reference share", f"{_share(part['reference_share'])} of {part['reference_rows']}"),
        ("p-value", _number(part["p_value"])),
        ("breaches from share", _share(part["breach_at"])),
    ])]


# ---- figures ----------------------------------------------------------------------------------------------------


def _figures(result: MonitorResult) -> list:
    """The page's figures as one grid, each titled with what it shows, its window and its unit."""
    series = result.series
    windows = result.windows
    per_window = ("one window, the whole log" if len(windows) <= 1 and result.window == "the whole log"
                  else f"per window, {result.window}")
    whole_log = "whole log" + (f" since {_moment(result.since)}" if result.since else "")
    figures = []
    if windows and "skipped" not in result.reference:
        for name in DRIFT_CHECKS:
            parts = [w["figures"]["drift"].get(name, {}) for w in windows]
            if all("skipped" in part for part in parts):
                continue
            points = [(w["index"], part[FIGURES[name]], part["breach_at"], bool(
                [b for b in w["breaches"] if b["check"] == name])) for w, part in zip(windows, parts)
                if "skipped" not in part]
            figures.append(Image(f"{name}.png", check_over_windows_png(name, points),
                                 f"{DRIFT_FIGURE_TITLES[name]} ({per_window}; {AXIS_UNITS[name]})"))
    if series.request_times:
        figures.append(Image("traffic.png", traffic_over_windows_png(windows, result.settings),
                             f"Error rate and p95 latency ({per_window}; share 0 to 1, seconds)"))
    if series.latencies:
        figures.append(Image("latency.png", latency_png(series.latencies),
                             f"Latency of answered requests ({whole_log}, {len(series.latencies):,}; seconds)"))
    if series.live_lengths and series.reference_lengths:
        figures.append(Image("prompt_lengths.png", prompt_lengths_png(series.reference_lengths, series.live_lengths),
                             f"Prompt length, live ({whole_log}) vs reference (tokens; share of prompts)"))
    if series.request_times:
        bucket = format_duration((max(series.request_times) or 1.0) / REQUEST_BUCKETS)
        figures.append(Image("requests.png", requests_over_time_png(series.request_times, series.failed_times),
                             f"Requests over time ({whole_log}; requests per {bucket}, failed in red)"))
    return [Figures(figures)] if figures else [Text("no figures: the log holds no requests")]
