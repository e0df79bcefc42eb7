"""A fair share of a busy machine: the `auto` thread rule (with the machine's cores and load mocked), the OpenMP
wait policy the CLI sets before torch loads, and `train.threads` in the config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tunesmith import threads
from tunesmith.config import validate_config
from tunesmith.errors import ConfigError

SOURCE = Path(__file__).resolve().parents[1] / "src"


@pytest.mark.parametrize(("cores", "busy", "processes", "expected"), [
    (2, 0.0, 1, 2),    # an idle machine: every core
    (2, 0.3, 1, 2),    # a core less than half busy is still free
    (2, 0.7, 1, 1),    # a core more than half busy is taken
    (2, 2.0, 1, 1),    # all taken (another training): still one thread
    (8, 3.0, 1, 5),
    (8, 0.0, 2, 4),    # two processes of one job share the cores
    (8, 2.0, 2, 3),
    (8, 9.5, 1, 1),    # load beyond the cores
    (4, -0.5, 1, 4),   # never more than the cores
])
def test_auto_takes_the_free_cores(cores, busy, processes, expected):
    assert threads.auto_threads(processes, busy=busy, cores=cores, environ={}) == expected


def test_omp_num_threads_caps_auto():
    assert threads.auto_threads(1, busy=0.0, cores=8, environ={"OMP_NUM_THREADS": "3"}) == 3
    assert threads.auto_threads(1, busy=7.0, cores=8, environ={"OMP_NUM_THREADS": "3"}) == 1
    assert threads.auto_threads(1, busy=0.0, cores=8, environ={"OMP_NUM_THREADS": "junk"}) == 8


def test_busy_cores_reads_the_process_cpus_of_proc_stat(tmp_path, monkeypatch):
    """Two snapshots of /proc/stat half a window apart: cpu1 fully busy, cpu0 idle, cpu2 outside the affinity."""
    stat = tmp_path / "stat"
    snapshots = iter([
        "cpu  0 0 0 0 0 0 0 0\ncpu0 100 0 0 900 0 0 0 0\ncpu1 100 0 0 900 0 0 0 0\ncpu2 0 0 0 1000 0 0 0 0\n",
        "cpu  0 0 0 0 0 0 0 0\ncpu0 100 0 0 1000 0 0 0 0\ncpu1 180 0 20 900 0 0 0 0\ncpu2 100 0 0 1000 0 0 0 0\n",
    ])
    monkeypatch.setattr(threads, "PROC_STAT", stat)
    monkeypatch.setattr(threads, "_affinity", lambda: {0, 1})
    monkeypatch.setattr(threads.time, "sleep", lambda _: stat.write_text(next(snapshots)))
    stat.write_text(next(snapshots))
    assert threads.busy_cores() == pytest.approx(1.0)


def test_settings_resolve(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 8)
    monkeypatch.setattr(threads, "busy_cores", lambda: 6.0)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert threads.resolve_threads("auto") == 2
    assert threads.resolve_threads("all") == 8
    assert threads.resolve_threads("all", processes=3) == 2
    assert threads.resolve_threads(5) == 5


def test_quiet_waits_keeps_the_users_value():
    assert threads.quiet_waits({}) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert threads.quiet_waits({"OMP_WAIT_POLICY": "ACTIVE"}) == {}


def _environment_when_torch_loads(environ: dict[str, str]) -> dict:
    """What a fresh CLI process's environment holds when the first module that could load torch is imported:
    an import hook stops at ``torch`` and reports."""
    probe = (
        "import json, os, sys\n"
        "class Stop:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'torch':\n"
        "            print(json.dumps({'policy': os.environ.get('OMP_WAIT_POLICY')})); sys.stdout.flush()\n"
        "            os._exit(0)\n"
        "sys.meta_path.insert(0, Stop())\n"
        "import tunesmith.cli\n"
        "print(json.dumps({'policy': os.environ.get('OMP_WAIT_POLICY'), 'torch': 'torch' in sys.modules}))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    env.update(environ, PYTHONPATH=str(SOURCE))
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[0])


def test_the_cli_asks_for_passive_waits_before_torch_can_load():
    seen = _environment_when_torch_loads({})
    assert seen["policy"] == "PASSIVE"
    assert seen.get("torch") is not True  # importing the CLI alone does not load torch either


def test_the_users_wait_policy_wins():
    assert _environment_when_torch_loads({"OMP_WAIT_POLICY": "ACTIVE"})["policy"] == "ACTIVE"


def _config(threads_setting) -> dict:
    return {"data": {"train": "train.jsonl"}, "train": {"threads": threads_setting}}


@pytest.mark.parametrize(("value", "expected"), [("auto", "auto"), ("all", "all"), (3, 3), (None, "all")])
def test_train_threads_values(value, expected):
    assert validate_config(_config(value)).train.threads == expected


def test_train_threads_defaults_to_auto():
    assert validate_config({"data": {"train": "train.jsonl"}}).train.threads == "auto"


@pytest.mark.parametrize("value", [0, -2, "many"])
def test_a_bad_train_threads_names_the_key(value):
    with pytest.raises(ConfigError) as info:
        validate_config(_config(value))
    assert "train.threads" in str(info.value) and "\n" not in str(info.value)
