"""A fair share of a machine other jobs use too: how many CPU threads torch gets, and how its threads wait.

Two habits of PyTorch cost a job most of its speed beside another busy job (a server, a second run, a notebook):
every process starts one compute thread per core, so two jobs run twice as many threads as there are cores; and
OpenMP's idle threads spin on a core for a while before they sleep, burning the time the other job's threads
need (and, descheduled while their peers spin, holding up their own parallel regions). The rules here:

- `quiet_waits` asks OpenMP to sleep at once (``OMP_WAIT_POLICY=PASSIVE``) unless the user chose otherwise. It
  must run before torch is imported: OpenMP reads its environment once, when the library loads. The CLI calls it
  first thing (`tunesmith.cli`);
- `auto_threads` sizes torch's thread pool from the cores free now: the cores this process may use (its CPU
  affinity, a cgroup quota), less those other processes kept busy over a short window, shared among this job's
  processes on the machine, at least one, never more than ``OMP_NUM_THREADS`` when the user set it.

The measured effect is in BENCHMARKS.md ("A busy machine"); `benchmarks/contention.py` measures it.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

QUIET_WAITS = {"OMP_WAIT_POLICY": "PASSIVE"}
"""GNU and Intel OpenMP both honour it: an idle thread sleeps instead of spinning (GNU's ``GOMP_SPINCOUNT`` and
Intel's ``KMP_BLOCKTIME`` then default to no spinning)."""
BUSY_WINDOW_S = 0.3
"""How long `busy_cores` watches the CPUs: long enough to average a server's bursts, short enough for a start-up."""
PROC_STAT = Path("/proc/stat")
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")

ThreadsSetting = int | Literal["auto", "all"]
"""`train.threads`: a number, ``auto`` (`auto_threads`) or ``all`` (every core this process may use)."""


def quiet_waits(environ: Mapping[str, str]) -> dict[str, str]:
    """The variables of `QUIET_WAITS` that ``environ`` lacks, to add to it (a value the user set wins)."""
    return {name: value for name, value in QUIET_WAITS.items() if name not in environ}


def available_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup (v2) CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS and Windows have no affinity call
        cores = os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cores, math.ceil(quota)) if quota else cores)


def _cgroup_quota() -> float | None:
    """``cpu.max``'s quota in cores (``"200000 100000"`` is 2), None without one (``"max 100000"``, no file)."""
    try:
        limit, period = CGROUP_CPU_MAX.read_text().split()[:2]
        return None if limit == "max" else int(limit) / int(period)
    except (OSError, ValueError, ZeroDivisionError):  # no cgroup v2 here, or a file we cannot read: no quota
        return None


def busy_cores(window_s: float = BUSY_WINDOW_S) -> float:
    """How many of this process's cores other processes kept busy over the next ``window_s`` seconds (this
    process sleeps meanwhile), from the kernel's per-CPU counters; where there are none (not Linux), the 1-minute
    load average; where there is neither, none."""
    cpus = _affinity()
    first = _cpu_times(cpus)
    if first is None:
        try:
            return min(os.getloadavg()[0], available_cores())
        except (AttributeError, OSError):  # Windows has no load average: nothing known to be busy
            return 0.0
    time.sleep(window_s)
    second = _cpu_times(cpus)
    total = sum(after[0] - before[0] for before, after in zip(first, second))
    idle = sum(after[1] - before[1] for before, after in zip(first, second))
    return len(cpus) * (total - idle) / total if total > 0 else 0.0


def _affinity() -> set[int]:
    try:
        return os.sched_getaffinity(0)
    except AttributeError:
        return set(range(os.cpu_count() or 1))


def _cpu_times(cpus: set[int]) -> list[tuple[int, int]] | None:
    """``(total, idle + iowait)`` jiffies of each CPU in ``cpus``, from /proc/stat; None where it is unreadable."""
    try:
        lines = PROC_STAT.read_text().splitlines()
    except OSError:
        return None
    times = []
    for line in lines:
        name, *fields = line.split() or [""]
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus and len(fields) >= 5:
            values = [int(field) for field in fields[:8]]  # user nice system idle iowait irq softirq steal
            times.append((sum(values), values[3] + values[4]))
    return times or None


def auto_threads(processes: int = 1, busy: float | None = None, cores: int | None = None,
                 environ: Mapping[str, str] = os.environ) -> int:
    """Threads for one of ``processes`` processes of a job on this machine: the free cores (``cores`` less
    ``busy``, rounded: a core more than half busy counts as taken) shared among them, at least 1, at most an
    equal share of ``cores`` and at most ``OMP_NUM_THREADS`` when it is set. ``busy`` and ``cores`` default to
    `busy_cores` and `available_cores`."""
    cores = available_cores() if cores is None else cores
    busy = busy_cores() if busy is None else busy
    share = max(1, cores // processes)
    threads = max(1, min(share, round((cores - busy) / processes)))
    cap = environ.get("OMP_NUM_THREADS", "")
    return min(threads, int(cap)) if cap.isdigit() and int(cap) > 0 else threads


def resolve_threads(setting: ThreadsSetting, processes: int = 1) -> int:
    """The thread count a ``train.threads`` setting means for one of ``processes`` processes on this machine."""
    if setting == "auto":
        return auto_threads(processes)
    if setting == "all":
        return max(1, available_cores() // processes)
    return setting


def use_threads(setting: ThreadsSetting, processes: int = 1) -> int:
    """Set torch's intra-op threads by ``setting`` (`resolve_threads`); returns the count."""
    import torch

    threads = resolve_threads(setting, processes)
    torch.set_num_threads(threads)
    return threads
