"""Who holds a run folder's lock, read back from the record the holder writes: its pid, host and subcommand, and
whether it still runs (a killed holder leaves its record; a pid may be reused since). The record is the owner's
alone, names no argument (a password, a key) and goes when the lock is released."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import socket
import stat
import subprocess
import sys

import pytest

from tunesmith import run_dir
from tunesmith.errors import RunError
from tunesmith.run_dir import LockHolder, RunDir, process_alive

HERE = socket.gethostname()


def dead_pid() -> int:
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(process.stdout)


def write_holder(run: RunDir, **record) -> None:
    run.lock_file.write_text(json.dumps({"pid": os.getpid(), "host": HERE, "command": "tunesmith train"} | record))


def test_the_holder_is_read_back_while_it_holds_the_lock_and_not_after(tmp_path, monkeypatch):
    monkeypatch.setattr(run_dir, "_COMMAND", [])
    run_dir.name_this_command("tunesmith train")
    run = RunDir(tmp_path)
    assert run.lock_holder() is None
    with run.lock():
        holder = run.lock_holder()
        assert (holder.pid, holder.host, holder.alive) == (os.getpid(), HERE, True)
        assert holder.command == "tunesmith train" and str(holder) == f"pid {os.getpid()}: tunesmith train"
    assert run.lock_holder() is None and not run.lock_file.exists()  # released: removed


def test_the_lock_file_is_the_owner_s_alone_and_holds_no_argument(tmp_path, monkeypatch):
    monkeypatch.setattr(run_dir, "_COMMAND", [])
    monkeypatch.setattr(sys, "argv", ["/usr/bin/tunesmith", "sweep", "c.yaml", "--storage",
                                      "postgresql://me:s3cret@db/x", "--api-key", "sk-123"])
    run = RunDir(tmp_path)
    run.lock_file.write_text("left by an older tunesmith")
    run.lock_file.chmod(0o644)
    with run.lock():
        assert stat.S_IMODE(run.lock_file.stat().st_mode) == 0o600
        record = json.loads(run.lock_file.read_text())
        assert set(record) == {"pid", "host", "command"} and record["command"] == "tunesmith"  # the program only
    monkeypatch.setattr(sys, "argv", ["/venv/lib/python3/site-packages/pytest/__main__.py", "-k", "x"])
    assert run_dir._command_name() == "pytest"
    monkeypatch.setattr(sys, "argv", ["-c", "secret"])
    assert run_dir._command_name() == "python"


def test_a_kill_9_leaves_a_stale_record_that_reads_dead_and_is_taken_over(tmp_path):
    run = RunDir(tmp_path)
    code = "import sys, time; from tunesmith.run_dir import RunDir\nwith RunDir(sys.argv[1]).lock():\n" \
           "    print('held', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    left = run.lock_holder()
    assert (left.pid, left.command, left.alive) == (holder.pid, "python", False)
    with run.lock():
        assert run.lock_holder().pid == os.getpid()
    assert not run.lock_file.exists()


def test_a_lock_file_removed_between_open_and_flock_is_opened_again(tmp_path, monkeypatch):
    """The holder before us released (and removed) the file we opened: holding the lock on it would let a third
    process lock a new file under the same name at the same time."""
    run = RunDir(tmp_path)
    real_flock, calls = fcntl.flock, []

    def flock_after_a_release(descriptor, operation):
        if operation & fcntl.LOCK_EX and not calls:
            run.lock_file.unlink()  # what a releasing holder does just before unlocking
        calls.append(descriptor)
        return real_flock(descriptor, operation)

    monkeypatch.setattr(run_dir.fcntl, "flock", flock_after_a_release)
    with run.lock():
        assert run.lock_file.is_file() and len(calls) == 2
        assert os.fstat(run_dir._HELD[str(tmp_path.resolve())][0]).st_ino == run.lock_file.stat().st_ino


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


def test_a_folder_is_tunesmith_s_by_its_marker_or_by_records_only_tunesmith_writes(tmp_path):
    claimed = run_dir.claim_folder(tmp_path / "a" / "sweep", "sweep")
    assert json.loads((claimed / "origin.json").read_text()) == {"made_by": "tunesmith", "kind": "sweep",
                                                                 "version": run_dir.__version__}
    assert run_dir.folder_kind(claimed) == "sweep" and run_dir.claim_folder(claimed, "sweep") == claimed
    earlier = tmp_path / "earlier"
    earlier.mkdir()
    (earlier / "config.yaml").write_text("model: {name: m}\n")
    assert run_dir.folder_kind(earlier) is None  # a config.yaml alone: the user's
    (earlier / "metrics.jsonl").write_text("")
    assert run_dir.folder_kind(earlier) == "run"  # a run made before folders carried the marker
    (earlier / "origin.json").write_text('{"config_path": null, "fingerprint": "abc"}')
    assert run_dir.folder_kind(earlier) == "run"
    with pytest.raises(RunError) as refused:
        run_dir.claim_folder(earlier, "sweep")
    assert str(refused.value) == f"{earlier} is a tunesmith run folder, not a sweep folder (name another folder)"
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunError, match="is a file, not a folder"):
        run_dir.require_ours(tmp_path / "file")


def test_only_a_stale_lock_file_leaves_a_folder_empty(tmp_path):
    (tmp_path / ".lock").write_text('{"pid": 1, "host": "h", "command": "tunesmith train"}')
    run_dir.require_ours(tmp_path)  # a failed attempt of an older tunesmith left it
    (tmp_path / "b.txt").write_text("")
    (tmp_path / "a.txt").write_text("")
    with pytest.raises(RunError, match=r"it holds a\.txt, b\.txt\)"):
        run_dir.require_ours(tmp_path)


def test_an_out_target_may_be_a_new_name_directly_in_a_run_and_its_own_file(tmp_path):
    run = RunDir(tmp_path / "run")
    run_dir.claim_folder(run.root, "run")
    assert run_dir.check_out_target(run.root / "judgments.csv") == run.root / "judgments.csv"
    assert run_dir.check_out_target(run.root / "labeling" / "queue.db", own=("labeling/queue.db",))
    for refused in (run.root / "labeling" / "queue.db", run.best / "adapter_model.safetensors", run.gate_json,
                    run.root / ".replace-journal.json"):
        with pytest.raises(RunError, match="a record tunesmith reads back"):
            run_dir.check_out_target(refused)
    with pytest.raises(RunError, match=rf"^--out {run.root} is a folder \(name a file to write\)$"):
        run_dir.check_out_target(run.root)


def test_a_run_of_an_older_version_is_known_by_its_resolved_config_or_an_interrupted_write(tmp_path):
    from tunesmith.config import save_config, validate_config

    resolved, staged = tmp_path / "resolved", tmp_path / "staged"
    resolved.mkdir()
    save_config(validate_config({"data": {"train": "t.jsonl"}}), resolved / "config.yaml")  # every section, in order
    (staged / ".merged-staging-k1ll3d").mkdir(parents=True)
    assert run_dir.folder_kind(resolved) == run_dir.folder_kind(staged) == "run"
    (resolved / "config.yaml").write_text("model: {name: m}\ndata: {train: t.jsonl}\nlora: {r: 2}\n")
    assert run_dir.folder_kind(resolved) is None
