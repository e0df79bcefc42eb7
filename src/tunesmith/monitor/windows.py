"""The windows `tunesmith monitor` judges one by one: ``--window 1h`` (durations ``30s``, ``30m``, ``1h``, ``1d``:
windows aligned to the clock, since the Unix epoch in UTC, so a cron job meets the same windows each time),
``--window 50`` (every 50 answered requests of the run's model; the other records go with the window whose time
they fall in), or without one the whole log. ``--since`` (an ISO 8601 time, or a duration back from the log's last
record) drops the records before it."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from tunesmith.errors import TunesmithError
from tunesmith.monitor.request_log import parse_time

DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_duration(text: str) -> timedelta | None:
    """``30m`` -> 30 minutes; None when ``text`` is not a duration."""
    match = DURATION.fullmatch(text.strip().lower())
    return timedelta(seconds=float(match.group(1)) * UNITS[match.group(2)]) if match else None


@dataclass(frozen=True)
class WindowSpec:
    """How a log is cut: by ``duration``, by ``requests`` (answered requests of the run's model), or neither (the
    whole log is one window)."""

    duration: timedelta | None = None
    requests: int | None = None
    text: str = "the whole log"


def parse_window(text: str | None) -> WindowSpec:
    """``--window``: a duration or a number of requests; an error saying what it takes otherwise."""
    if text is None:
        return WindowSpec()
    if text.strip().isdigit():
        if int(text) < 1:
            raise TunesmithError(f"--window {text}: a number of requests must be 1 or more")
        return WindowSpec(requests=int(text), text=f"every {int(text)} answered requests")
    duration = parse_duration(text)
    if duration is None or duration.total_seconds() <= 0:
        raise TunesmithError(f"--window {text!r} is neither a duration nor a number of requests",
                             "e.g. --window 1h, 30m, 1d or --window 50")
    return WindowSpec(duration=duration, text=f"windows of {text.strip()}")


def parse_since(text: str, last: datetime | None) -> datetime:
    """``--since``: an ISO 8601 time (UTC when it names no zone), or a duration back from ``last`` (the log's last
    record)."""
    duration = parse_duration(text)
    if duration is not None:
        return (last or datetime.now(timezone.utc)) - duration
    try:
        return parse_time(text.strip())
    except ValueError:
        raise TunesmithError(f"--since {text!r} is neither an ISO time nor a duration",
                             "e.g. --since 2026-11-30T08:00 or --since 24h") from None


@dataclass
class Window:
    index: int
    start: datetime | None
    end: datetime | None
    """Time windows: the bounds of the slot (``end`` excluded); otherwise the first and last record's time."""
    records: list[dict]


def split_windows(records: list[dict], spec: WindowSpec, counts: Callable[[dict], bool]) -> list[Window]:
    """``records`` (request records, oldest first, each with a ``time``) cut as ``spec`` says; ``counts(record)``
    tells whether a record counts toward a window of N requests. Empty time slots are left out."""
    if spec.duration is not None:
        return _by_time(records, spec.duration)
    if spec.requests is not None:
        return _by_count(records, spec.requests, counts)
    return [_window(0, records)]


def _window(index: int, records: list[dict]) -> Window:
    times = [parse_time(r["time"]) for r in records if r.get("time")]
    return Window(index, min(times, default=None), max(times, default=None), records)


def _by_time(records: list[dict], duration: timedelta) -> list[Window]:
    slots: dict[int, list[dict]] = {}
    for record in records:
        slots.setdefault(int((parse_time(record["time"]) - EPOCH) / duration), []).append(record)
    return [Window(index, EPOCH + slot * duration, EPOCH + (slot + 1) * duration, slots[slot])
            for index, slot in enumerate(sorted(slots))]


def _by_count(records: list[dict], size: int, counts: Callable[[dict], bool]) -> list[Window]:
    """A new window starts at every ``size``-th counted record; records before the first counted one join the
    first window."""
    groups: list[list[dict]] = [[]]
    counted = 0
    for record in records:
        if counts(record):
            if counted and counted % size == 0:
                groups.append([])
            counted += 1
        groups[-1].append(record)
    return [_window(index, group) for index, group in enumerate(groups)]
