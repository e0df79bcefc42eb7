"""Thread sizing where the machine says little or odd things: /proc/stat unreadable or with odd lines, no load
average, a damaged cgroup quota file. `auto` still answers (the cores the process may use, less what is known
busy), never an exception."""

from __future__ import annotations

import pytest

from tunesmith import threads


def test_odd_proc_stat_lines_are_skipped(tmp_path, monkeypatch):
    stat = tmp_path / "stat"
    stat.write_text("\ncpu0 1 2\nintr 5 6 7\ncpu1 10 0 0 90 0 0 0 0\n")
    monkeypatch.setattr(threads, "PROC_STAT", stat)
    assert threads._cpu_times({0, 1}) == [(100, 90)]


def test_busy_cores_falls_back_to_the_load_average(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "PROC_STAT", tmp_path / "missing")
    monkeypatch.setattr(threads, "available_cores", lambda: 4)
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (1.5, 0.0, 0.0))
    assert threads.busy_cores() == 1.5
    monkeypatch.setattr(threads.os, "getloadavg", lambda: (9.0, 0.0, 0.0))
    assert threads.busy_cores() == 4
    monkeypatch.delattr(threads.os, "getloadavg")
    assert threads.busy_cores() == 0.0


@pytest.mark.parametrize(("cpu_max", "expected"), [
    ("max 100000\n", 8), ("150000 100000\n", 2), ("", 8), ("junk\n", 8), ("lots 100000\n", 8), ("100 0\n", 8)])
def test_a_cgroup_quota_caps_the_cores(tmp_path, monkeypatch, cpu_max, expected):
    (tmp_path / "cpu.max").write_text(cpu_max)
    monkeypatch.setattr(threads, "CGROUP_CPU_MAX", tmp_path / "cpu.max")
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda _: set(range(8)))
    assert threads.available_cores() == expected
