"""Who holds a run folder's lock, read back from the record the holder writes: its pid, host and command, and
whether it still runs (a killed holder leaves its record; a pid may be reused since)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from tunesmith.run_dir import LockHolder, RunDir, process_alive

HERE = socket.gethostname()


def dead_pid() -> int:
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(process.stdout)


def write_holder(run: RunDir, **record) -> None:
    run.lock_file.write_text(json.dumps({"pid": os.getpid(), "host": HERE, "command": "tunesmith train"} | record))


def test_the_holder_is_read_back_while_it_holds_the_lock_and_not_after(tmp_path):
    run = RunDir(tmp_path)
    assert run.lock_holder() is None
    with run.lock():
        holder = run.lock_holder()
        assert (holder.pid, holder.host, holder.alive) == (os.getpid(), HERE, True)
        assert holder.command == " ".join(sys.argv) and str(holder) == f"pid {os.getpid()}: {holder.command}"
    assert run.lock_holder() is None and run.lock_file.is_file()


def test_a_killed_holder_leaves_its_record_and_reads_dead(tmp_path):
    run = RunDir(tmp_path)
    write_holder(run, pid=dead_pid())
    assert run.lock_holder().alive is False  # its process ended (a killed run leaves the record behind)
    write_holder(run)
    os.utime(run.lock_file, (0, 0))  # written long before this process started: the pid was reused
    assert run.lock_holder().alive is False


def test_a_holder_on_another_machine_is_named_and_not_judged(tmp_path):
    run = RunDir(tmp_path)
    write_holder(run, host="elsewhere", pid=dead_pid())
    assert run.lock_holder() == LockHolder(pid=run.lock_holder().pid, host="elsewhere", command="tunesmith train",
                                           alive=None)
    assert str(run.lock_holder()).startswith(f"pid {run.lock_holder().pid} on elsewhere: ")


def test_an_empty_or_damaged_record_names_no_holder(tmp_path):
    run = RunDir(tmp_path)
    for text in ("", '{"pid": 12', '{"pid": 0, "host": "h", "command": "c"}', '{"pid": 5}', "[1]", "\xff"):
        run.lock_file.write_text(text)
        assert run.lock_holder() is None, text


def test_process_alive():
    assert process_alive(os.getpid()) and not process_alive(dead_pid())
    assert not process_alive(0) and not process_alive(-1)  # process groups, not processes
    assert process_alive(os.getpid(), started_by=1e12) and not process_alive(os.getpid(), started_by=0)
