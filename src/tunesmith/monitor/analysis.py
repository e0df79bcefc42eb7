"""`tunesmith monitor LOG_DIR`: what a served model met, from the request log of `tunesmith serve`
(`tunesmith.monitor.request_log`), judged window by window (`tunesmith.monitor.windows`) with the run's ``monitor:``
section.

Two parts, in each window and for the whole log (after ``--since``):

- **Traffic** (every request record): requests by model and route, time span and rate, errors (status ≥ 400,
  5xx apart), latency and time-to-first-token percentiles of the answered requests, token totals; for the whole
  log also feedback and, where a shadow model answered too, how often it agreed with the primary. Each window's
  error rate and p95 latency are judged against ``monitor.max_error_rate`` and ``monitor.max_p95_latency_s``.
- **Drift** of the run's model's answered requests against the run's reference (``reference.json``, written when
  the run is evaluated): novelty, prompt length, label mix and confidence, each a statistical test
  (`tunesmith.monitor.checks`). Without a reference, drift says why and traffic is still judged.

The requests with the highest novelty are listed, for the whole log and for each window. A breach names its check,
window, value, p-value (drift) and threshold; `MonitorResult.exit_code` is 1 when any window breaches, for cron
jobs and CI.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from tunesmith.config import MonitorConfig, override_section
from tunesmith.errors import RunError
from tunesmith.monitor.checks import (
    EVALUATE_HINT,
    drift_breaches,
    finite_number,
    most_novel,
    window_drift,
)
from tunesmith.monitor.drift import percentiles
from tunesmith.monitor.request_log import LogRecords, ServedRun, answered, parse_time, read_records, served_run
from tunesmith.monitor.windows import Window, parse_since, parse_window, split_windows
from tunesmith.results.reference import Reference, read_reference

LATENCY_POINTS = (50, 95, 99)
TTFT_POINTS = (50, 95)
SHADOW_LATENCY_POINTS = (50, 95)
MIN_RATE_SPAN_S = 60.0
"""A log spanning less time gives no request rate: a burst of requests within a second is no rate per minute."""
NO_MODEL = "(none)"

CHECKS = (
    # (figure, where it is in a window's traffic, the setting that bounds it, whether it must stay below)
    ("error_rate", ("error_rate",), "max_error_rate", True),
    ("p95_latency_s", ("latency_s", "p95"), "max_p95_latency_s", True),
)
"""The traffic checks, judged in every window; the drift checks are `tunesmith.monitor.checks.DRIFT_CHECKS`."""


# ---- traffic ----------------------------------------------------------------------------------------------------


def request_figures(requests: list[dict]) -> dict:
    """The traffic figures of request records (see the module docstring)."""
    total = len(requests)
    times = sorted(parse_time(r["time"]) for r in requests if r.get("time"))
    span = (times[-1] - times[0]).total_seconds() if times else None
    errors = sum(not answered(r) for r in requests)
    server_errors = sum((r.get("status") or 0) >= 500 for r in requests)
    # Percentiles of answered requests only: a request refused at once (a 400 for a bad body) would pull them down.
    ok = [r for r in requests if answered(r)]
    return {
        "requests": total,
        # A request refused before it reached a model (bad JSON, a wrong key) names none.
        "by_model": dict(Counter(str(r.get("model") or NO_MODEL) for r in requests).most_common()),
        "by_route": dict(Counter(str(r.get("route")) for r in requests).most_common()),
        "first": times[0].isoformat() if times else None,
        "last": times[-1].isoformat() if times else None,
        "span_s": span,
        "requests_per_minute": total / (span / 60) if span is not None and span >= MIN_RATE_SPAN_S else None,
        "errors": errors,
        "error_rate": errors / total if total else None,
        "server_errors": server_errors,
        "server_error_rate": server_errors / total if total else None,
        "latency_s": percentiles(_figures(ok, "latency_s"), LATENCY_POINTS),
        "ttft_s": percentiles(_figures(ok, "ttft_s"), TTFT_POINTS),
        "prompt_tokens": sum(_figures(requests, "prompt_tokens")),
        "completion_tokens": sum(_figures(requests, "completion_tokens")),
    }


def _figures(records: list[dict], key: str) -> list[float]:
    """The ``key`` figure of each record that holds a finite number there."""
    return [r[key] for r in records if finite_number(r.get(key))]


def traffic(log: LogRecords) -> dict:
    """`request_figures` of every request record, with feedback, shadow agreement, and the count of the log's lines
    that were skipped for not being records (each named in a warning as it was read)."""
    return {**request_figures(log.requests), "feedback": feedback_counts(log), "shadow": shadow_agreement(log),
            "skipped_lines": log.skipped_lines}


def feedback_counts(log: LogRecords) -> dict:
    """Counts over the latest feedback of each request."""
    latest = list(log.feedback.values())
    return {"records": log.feedback_records, "requests": len(latest),
            "up": sum(f.get("rating") == "up" for f in latest), "down": sum(f.get("rating") == "down" for f in latest),
            "corrections": sum(bool(f.get("correction")) for f in latest),
            "labels": sum(f.get("label") is not None for f in latest)}


def shadow_agreement(log: LogRecords) -> dict | None:
    """How often the shadow said what the primary said: the same label (classification) or, for generation, the
    same answer exactly (after trimming whitespace; answers need content logging). None without shadow records."""
    if not log.shadows:
        return None
    labels, answers = [], []
    for request in log.requests:
        shadow = log.shadows.get(request.get("id"))
        if shadow is None or not answered(request):
            continue
        if request.get("label") is not None and shadow.get("label") is not None:
            labels.append(request["label"] == shadow["label"])
        elif isinstance(request.get("answer"), str) and isinstance(shadow.get("answer"), str):
            answers.append(request["answer"].strip() == shadow["answer"].strip())
    latencies = _figures(list(log.shadows.values()), "latency_s")
    return {"models": sorted({str(s.get("model")) for s in log.shadows.values()}), "answers": len(log.shadows),
            "latency_s": percentiles(latencies, SHADOW_LATENCY_POINTS),
            "labels_compared": len(labels), "label_agreement": sum(labels) / len(labels) if labels else None,
            "answers_compared": len(answers), "answer_agreement": sum(answers) / len(answers) if answers else None}


def traffic_breaches(figures: dict, settings: MonitorConfig) -> list[dict]:
    """Every figure of `CHECKS` in a window's traffic beyond its threshold."""
    found = []
    for name, path, setting, must_stay_below in CHECKS:
        threshold = getattr(settings, setting)
        value = figures
        for key in path:
            value = value.get(key) if isinstance(value, dict) else None
        if threshold is not None and value is not None and (value > threshold if must_stay_below
                                                            else value < threshold):
            found.append({"check": name, "value": value, "p_value": None, "threshold": threshold,
                          "setting": f"monitor.{setting}"})
    return found


# ---- the reference ----------------------------------------------------------------------------------------------


def load_reference(served: ServedRun) -> tuple[Reference | None, str]:
    """The run's `Reference`, or None and one line why not."""
    if served.run is None:
        return None, f"no run to judge drift against: {served.missing}"
    reference = read_reference(served.run.reference)
    if reference is None:
        return None, f"the run has no reference ({served.run.reference}): {EVALUATE_HINT}"
    return reference, ""


def reference_summary(served: ServedRun, reference: Reference | None, missing: str) -> dict:
    if reference is None:
        return {"skipped": missing}
    return {"path": str(served.run.reference), "rows": reference.rows, "sources": reference.sources,
            "task": reference.task, "created": reference.created, "embedder": reference.embedder}


# ---- the whole result -------------------------------------------------------------------------------------------


@dataclass
class Series:
    """Raw values behind the page's figures (not part of the JSON)."""

    latencies: list[float]
    request_times: list[float]
    """Seconds since the first request, one per request."""
    failed_times: list[float]
    live_lengths: list[int]
    reference_lengths: list[int]


@dataclass
class MonitorResult:
    log_dir: str
    settings: MonitorConfig
    run: str | None
    model: str | None
    reference: dict
    window: str
    """How the log was cut (`WindowSpec.text`)."""
    since: str | None
    traffic: dict
    """The whole log after ``--since``."""
    most_novel: list[dict]
    windows: list[dict]
    series: Series

    @property
    def breaches(self) -> list[dict]:
        """Every window's breaches, each naming its window."""
        return [{**breach, "window": window["index"], "start": window["start"], "end": window["end"]}
                for window in self.windows for breach in window["breaches"]]

    @property
    def exit_code(self) -> int:
        return 1 if self.breaches else 0

    def to_dict(self) -> dict:
        return {"log_dir": self.log_dir, "run": self.run, "model": self.model, "reference": self.reference,
                "window": self.window, "since": self.since, "traffic": self.traffic, "most_novel": self.most_novel,
                "windows": self.windows, "breaches": self.breaches,
                "settings": self.settings.model_dump(mode="json"), "exit_code": self.exit_code}


def judge_window(window: Window, is_mine, reference: Reference | None, missing: str,
                 settings: MonitorConfig) -> dict:
    """One window's figures and breaches (``is_mine(record)``: an answered request of the run's model)."""
    mine = [r for r in window.records if is_mine(r)]
    figures = {"traffic": request_figures(window.records), "drift": window_drift(mine, reference, missing, settings)}
    breaches = traffic_breaches(figures["traffic"], settings) + drift_breaches(figures["drift"])
    return {"index": window.index, "start": window.start.isoformat() if window.start else None,
            "end": window.end.isoformat() if window.end else None, "requests": len(window.records),
            "answered": len(mine), "figures": figures, "breaches": breaches,
            "most_novel": most_novel(mine, reference)}


def monitor_log(log_dir: str | Path, run: str | Path | None = None, overrides: list[str] | None = None,
                window: str | None = None, since: str | None = None) -> MonitorResult:
    """Read the log in ``log_dir`` (every rotated file, oldest first) and judge it window by window: the run is
    ``run``, else the primary model's run in served.json; settings are the run's ``monitor:`` section (the defaults
    without a run) with ``overrides`` (``monitor.key=value``) applied; ``window`` and ``since`` as
    `tunesmith.monitor.windows` reads them."""
    spec = parse_window(window)
    log = read_records(log_dir)
    served = served_run(log_dir, run)
    settings = override_section("monitor", served.run.config().monitor if served.run else MonitorConfig(),
                                overrides or [])
    if since is not None or spec.duration is not None:
        _require_times(log.requests, log_dir)
    cutoff = None
    if since is not None:
        cutoff = parse_since(since, max((parse_time(r["time"]) for r in log.requests), default=None))
        log = _after(log, cutoff)
    reference, missing = load_reference(served)

    def is_mine(record: dict) -> bool:
        return answered(record) and (served.model is None or record.get("model") == served.model)

    windows = [judge_window(w, is_mine, reference, missing, settings)
               for w in split_windows(log.requests, spec, is_mine)]
    mine = [r for r in log.requests if is_mine(r)]
    return MonitorResult(str(log_dir), settings, str(served.run.root) if served.run else None, served.model,
                         reference_summary(served, reference, missing), spec.text,
                         cutoff.isoformat() if cutoff else None, traffic(log), most_novel(mine, reference), windows,
                         _series(log.requests, mine, reference))


def _require_times(requests: list[dict], log_dir: str | Path) -> None:
    untimed = next((r for r in requests if not r.get("time")), None)
    if untimed is not None:
        raise RunError(f"{log_dir}: request {untimed.get('id')!r} has no time, so the log cannot be cut by time",
                       "leave out --window DURATION and --since")


def _after(log: LogRecords, cutoff: datetime) -> LogRecords:
    """The requests at or after ``cutoff``, with their shadows and feedback."""
    requests = [r for r in log.requests if parse_time(r["time"]) >= cutoff]
    ids = {r.get("id") for r in requests}
    feedback = {key: value for key, value in log.feedback.items() if key in ids}
    return LogRecords(requests, {key: value for key, value in log.shadows.items() if key in ids}, feedback,
                      len(feedback), log.skipped_lines)


def _series(requests: list[dict], mine: list[dict], reference: Reference | None) -> Series:
    timed = [r for r in requests if r.get("time")]
    start = min((parse_time(r["time"]) for r in timed), default=None)

    def seconds(records: list[dict]) -> list[float]:
        return [(parse_time(r["time"]) - start).total_seconds() for r in records]

    return Series(latencies=_figures([r for r in requests if answered(r)], "latency_s"),
                  request_times=seconds(timed), failed_times=seconds([r for r in timed if not answered(r)]),
                  live_lengths=_figures(mine, "prompt_tokens"),
                  reference_lengths=reference.prompt_tokens if reference else [])

