"""The drift checks of one window of live traffic against the run's `Reference`: each a statistical test
(`tunesmith.monitor.drift`) whose p-value is judged at ``monitor.false_alarm_rate`` split evenly over the checks
measured in that window (Bonferroni), so a healthy window raises any drift breach with at most that chance.

- ``novelty``: share of requests above the reference's upper tail (``monitor.novelty_tail``);
- ``prompt_length``: KS test of ``prompt_tokens`` (PSI beside it);
- ``labels``: predicted label mix (classification);
- ``confidence``: share of answers below the reference's lower tail (``monitor.confidence_tail``): a record's
  ``confidence``, or a classification's ``probability`` in logs written before ``confidence`` was.

A check that cannot be measured says why (``{"skipped": ...}``) and does not count in the split.
"""

from __future__ import annotations

import math

from tunesmith.config import MonitorConfig
from tunesmith.monitor.drift import label_shift, length_shift, tail_shift
from tunesmith.results.reference import Reference
from tunesmith.text import shorten

DRIFT_CHECKS = ("novelty", "prompt_length", "labels", "confidence")
FIGURES = {"novelty": "share", "prompt_length": "ks_statistic", "labels": "statistic", "confidence": "share"}
"""The figure of each check that a breach reports and the page draws over the windows."""
NOVEL_LISTED = 5
INPUT_CHARS = 160
EVALUATE_HINT = "evaluate the run: `tunesmith eval RUN`"


def finite_number(value) -> bool:
    """A finite number (a hand-edited log may hold a string, a boolean or NaN where a figure belongs)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def live_confidence(record: dict) -> float | None:
    if finite_number(record.get("confidence")):
        return float(record["confidence"])
    if record.get("label") is not None and finite_number(record.get("probability")):
        return float(record["probability"])
    return None


def live_values(records: list[dict], reference: Reference) -> dict[str, list | str]:
    """What each check compares with the reference: the live values of ``records``, or why the check cannot be
    measured."""
    novelty = [float(r["novelty"]) for r in records if finite_number(r.get("novelty"))]
    lengths = [r["prompt_tokens"] for r in records if finite_number(r.get("prompt_tokens"))]
    labels = [str(r["label"]) for r in records if r.get("label") is not None]
    confidence = [value for r in records if (value := live_confidence(r)) is not None]
    return {
        "novelty": (f"the reference has no novelty scores: {reference.novelty_skipped or 'not measured'}"
                    if reference.novelty is None else novelty or
                    "no request record has `novelty` (a server without the rag extra, or a log written before "
                    "novelty was measured)"),
        "prompt_length": ("the reference holds no rows" if not reference.prompt_tokens else lengths or
                          "no request record has `prompt_tokens`"),
        "labels": ("the run is not a classification run" if not reference.predicted_labels else labels or
                   "no classification requests"),
        "confidence": (f"the reference has no confidence: {reference.confidence_skipped or 'not measured'}"
                       if reference.confidence is None else confidence or
                       "no request record has `confidence` (or, for a classification, `probability`)"),
    }


def measure(name: str, live: list, reference: Reference, settings: MonitorConfig, level: float | None) -> dict:
    """Check ``name`` of `DRIFT_CHECKS` on its ``live`` values, its ``breach_at`` computed at ``level``."""
    if name == "novelty":
        return tail_shift(reference.novelty, live, settings.novelty_tail, upper=True, level=level).to_dict()
    if name == "prompt_length":
        return length_shift(reference.prompt_tokens, live, level).to_dict()
    if name == "labels":
        return label_shift(reference.predicted_labels, live, reference.labels, level).to_dict()
    found = tail_shift(reference.confidence, live, settings.confidence_tail, upper=False, level=level).to_dict()
    return {**found, "kind": reference.confidence_kind}


def window_drift(records: list[dict], reference: Reference | None, missing: str, settings: MonitorConfig) -> dict:
    """The drift part of one window (``records``: its answered requests of the run's model): each check, whether
    they are judged, and the level each is judged at. ``missing`` says why there is no ``reference``."""
    if reference is None:
        return {"skipped": missing}
    values = live_values(records, reference)
    checks = [name for name in DRIFT_CHECKS if not isinstance(values[name], str)]
    level = settings.false_alarm_rate / len(checks) if settings.false_alarm_rate is not None and checks else None
    if settings.false_alarm_rate is None:
        not_judged = "monitor.false_alarm_rate is null"
    elif len(records) < settings.min_requests:
        not_judged = f"{len(records)} answered requests, fewer than monitor.min_requests ({settings.min_requests})"
    else:
        not_judged = None if checks else "no check could be measured"
    measured = {name: {"skipped": values[name]} if name not in checks
                else measure(name, values[name], reference, settings, level) for name in DRIFT_CHECKS}
    return {"judged": not_judged is None, "not_judged": not_judged, "level": level, "checks": checks, **measured}


def drift_breaches(drift: dict) -> list[dict]:
    """Each judged check of a window's drift whose p-value is at or below the window's level."""
    if not drift.get("judged"):
        return []
    return [{"check": name, "value": drift[name][FIGURES[name]], "p_value": drift[name]["p_value"],
             "threshold": drift["level"], "setting": "monitor.false_alarm_rate"}
            for name in drift["checks"] if drift[name]["p_value"] <= drift["level"]]


def most_novel(records: list[dict], reference: Reference | None, count: int = NOVEL_LISTED) -> list[dict]:
    """The ``count`` requests of ``records`` with the highest novelty: id, time, novelty and the input (shortened;
    None without content logging)."""
    scored = sorted((r for r in records if finite_number(r.get("novelty"))),
                    key=lambda r: -float(r["novelty"]))[:count]
    return [{"id": r.get("id"), "time": r.get("time"), "novelty": float(r["novelty"]), "input": _input(r, reference)}
            for r in scored]


def _input(record: dict, reference: Reference | None) -> str | None:
    """The request's input (`Reference.input_of`; without a reference the text to classify, else the last user
    message as it was sent)."""
    text = record.get("text") if isinstance(record.get("text"), str) else None
    messages = record.get("messages") if isinstance(record.get("messages"), list) else None
    if reference is not None:
        found = reference.input_of(text, messages)
    else:
        users = [m.get("content") for m in messages or [] if isinstance(m, dict) and m.get("role") == "user"]
        found = text if text is not None else users[-1] if users and isinstance(users[-1], str) else None
    return shorten(found, INPUT_CHARS) if found is not None else None
