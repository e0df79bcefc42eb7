"""What must survive a crash does: files and folders are fsync'd before they are renamed into place, an export's
two folders always come from one export, and a killed writer's staging is cleaned up by the next command."""

from __future__ import annotations

import json
import os

from tunesmith import atomic
from tunesmith.atomic import JOURNAL, recover_folders, staged_folders, write_atomic
from tunesmith.json_files import read_json, write_json
from tunesmith.run_dir import RunDir


def test_atomic_files_are_flushed_to_disk_before_the_rename(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real(fd))
    write_atomic(tmp_path / "eval.json", "{}")
    assert any(".eval.json-staging-" in path for path in synced) and str(tmp_path) in synced


def test_json_files_are_valid_json_whatever_the_numbers(tmp_path):
    write_json(tmp_path / "a.json", {"loss": float("nan"), "ppl": float("inf"), "rows": [1.5, float("-inf")]})
    text = (tmp_path / "a.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert read_json(tmp_path / "a.json") == {"loss": None, "ppl": None, "rows": [1.5, None]}


def test_two_folders_replaced_together_survive_a_kill_between_the_renames(tmp_path, monkeypatch):
    for name in ("adapter", "merged"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "export.txt").write_text("old")
    renamed = []
    real = atomic.replace_folder

    def killed_after_the_first(new, final):
        if renamed:
            raise KeyboardInterrupt  # the process dies between the two replacements
        renamed.append(final.name)
        real(new, final)

    monkeypatch.setattr(atomic, "replace_folder", killed_after_the_first)
    try:
        with staged_folders(tmp_path, ["adapter", "merged"]) as staging:
            for folder in staging.values():
                (folder / "export.txt").write_text("new")
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    assert (tmp_path / JOURNAL).is_file()  # the commit point was passed: the next command finishes the job
    recover_folders(tmp_path)
    assert [(tmp_path / name / "export.txt").read_text() for name in ("adapter", "merged")] == ["new", "new"]
    assert not (tmp_path / JOURNAL).exists() and not list(tmp_path.glob(".*-staging-*"))


def test_a_killed_export_leaves_nothing_behind_after_the_next_command(tmp_path):
    run = RunDir(tmp_path / "run")
    (run.root / ".merged-staging-k1ll3d").mkdir(parents=True)
    (run.root / ".merged-staging-k1ll3d" / "model.safetensors").write_bytes(b"\0" * 1000)
    (run.root / ".eval.json-staging-x").write_text("{")
    run.checkpoints.mkdir()
    (run.checkpoints / ".step-000004-staging-y").mkdir()
    with run.lock():
        pass
    assert sorted(p.name for p in run.root.iterdir()) == ["checkpoints"]  # the lock's file went with the lock
    assert list(run.checkpoints.iterdir()) == []


def test_a_failed_run_does_not_block_its_name(project, cli, write_jsonl):
    good = (project / "data.jsonl").read_text()
    (project / "data.jsonl").write_text(good + '{"text": "cut', encoding="utf-8")
    code, _, error = cli("train", "config.yaml", "--set", "output.name=exp")
    assert code == 2 and "data.jsonl:25: malformed JSON" in error
    (project / "data.jsonl").write_text(good, encoding="utf-8")
    code, _, error = cli("train", "config.yaml", "--set", "output.name=exp")
    assert code == 0, error
    assert json.loads((project / "runs" / "exp" / "train_summary.json").read_text())["steps"] == 4
