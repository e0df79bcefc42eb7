"""Cutting a log into windows: by duration (aligned to the clock), by answered requests, or whole; --since."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from tunesmith.errors import TunesmithError
from tunesmith.monitor.windows import parse_duration, parse_since, parse_window, split_windows


def test_durations_and_counts():
    assert parse_duration("30m") == timedelta(minutes=30) and parse_duration("1.5h") == timedelta(minutes=90)
    assert parse_duration("1d") == timedelta(days=1) and parse_duration("45s") == timedelta(seconds=45)
    assert parse_duration("1w") is None and parse_duration("h") is None
    assert parse_window(None).duration is None and parse_window(None).requests is None
    assert parse_window("50").requests == 50 and parse_window("1h").duration == timedelta(hours=1)


@pytest.mark.parametrize("text", ["0", "1w", "soon", "-5", "0m", ""])
def test_a_bad_window_is_a_one_line_error(text):
    with pytest.raises(TunesmithError) as caught:
        parse_window(text)
    assert "--window" in str(caught.value) and "\n" not in str(caught.value)


def test_since_is_an_iso_time_or_a_duration_back_from_the_last_record():
    last = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
    assert parse_since("24h", last) == last - timedelta(hours=24)
    assert parse_since("2026-11-30T08:00", last) == datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)
    assert parse_since("2026-11-30T09:00+01:00", last) == datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)
    with pytest.raises(TunesmithError, match="--since 'yesterday' is neither an ISO time nor a duration"):
        parse_since("yesterday", last)


def test_time_windows_are_aligned_to_the_clock_and_empty_ones_left_out(request_record):
    records = [request_record(seconds) for seconds in (0, 100, 1790, 1800, 7300)]  # from 08:00:00 UTC
    windows = split_windows(records, parse_window("30m"), lambda record: True)
    assert [(w.start.strftime("%H:%M"), w.end.strftime("%H:%M"), len(w.records)) for w in windows] == [
        ("08:00", "08:30", 3), ("08:30", "09:00", 1), ("10:00", "10:30", 1)]
    assert [w.index for w in windows] == [0, 1, 2]


def test_count_windows_count_answered_requests_of_the_run_and_carry_the_rest(request_record):
    records = [request_record(0, status=500)] + [request_record(n) for n in range(1, 8)]
    records.insert(4, request_record(99, model="other"))
    windows = split_windows(records, parse_window("3"), lambda r: r["status"] < 400 and r["model"] == "tuned")
    assert [[r["id"] for r in w.records] for w in windows] == [
        ["req-0", "req-1", "req-2", "req-3", "req-99"], ["req-4", "req-5", "req-6"], ["req-7"]]
    assert windows[0].start == datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)
    assert windows[1].end == datetime(2026, 11, 30, 8, 0, 6, tzinfo=timezone.utc)


def test_without_a_window_the_whole_log_is_one(request_record):
    windows = split_windows([request_record(n) for n in range(5)], parse_window(None), lambda r: True)
    assert len(windows) == 1 and len(windows[0].records) == 5
    assert split_windows([], parse_window("10"), lambda r: True)[0].records == []
