"""One writer per run folder: a second process gets a clear error naming the holder, a killed holder leaves no
stale lock, and the pipeline holds the lock across its stages."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tunesmith.errors import RunError
from tunesmith.run_dir import RunDir

HOLD = """
import sys, time
from tunesmith.run_dir import RunDir
with RunDir(sys.argv[1]).lock():
    print("held", flush=True)
    time.sleep(60)
"""


def hold_in_another_process(folder) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_writer_is_refused_with_the_holder_s_pid(tmp_path):
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    holder = hold_in_another_process(run.root)
    try:
        with pytest.raises(RunError) as refused:
            with run.lock():
                pass
        assert str(refused.value).startswith(f"run folder {run.root} is in use by another tunesmith process "
                                             f"(pid {holder.pid}: python)")  # no argument: they may hold secrets
    finally:
        holder.kill()
        holder.wait()
    with run.lock():  # the holder was killed: its lock went with it
        pass


def test_two_trainers_on_one_run_folder(project, cli):
    code, _, error = cli("train", "config.yaml", "--set", "output.name=exp")
    assert code == 0, error
    holder = hold_in_another_process(project / "runs" / "exp")
    try:
        code, _, error = cli("train", "config.yaml", "--resume", "--set", "output.name=exp",
                             "--set", "train.max_steps=6")
        assert code == 2 and f"is in use by another tunesmith process (pid {holder.pid}" in error
    finally:
        holder.kill()
        holder.wait()


def test_the_lock_is_reentrant_in_one_process(tmp_path):
    run = RunDir(tmp_path)
    with run.lock(), run.lock():
        assert (tmp_path / ".lock").is_file()
    started = time.perf_counter()
    with run.lock():
        pass
    assert time.perf_counter() - started < 5
