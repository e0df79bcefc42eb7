"""`tunesmith.promotion`: the marker moves only to a run that passed its gate on its current evaluation (or with
force, said in the audit line), atomically, and every promotion is a line of promotions.jsonl."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tunesmith.config import save_config, validate_config
from tunesmith.errors import RunError
from tunesmith.json_files import read_jsonl
from tunesmith.promotion import PROMOTIONS_FILE, default_marker, marked_run, promote
from tunesmith.results.gate import GATE_VERSION, file_sha256
from tunesmith.run_dir import RunDir


def run_folder(root: Path, passed: bool | None = True) -> Path:
    """A run folder (a config), evaluated and gated by hand as the gate.json contract says (``passed`` None: never
    gated)."""
    run = RunDir(root)
    root.mkdir(parents=True)
    save_config(validate_config({"model": {"name": "default"}, "data": {"train": "train.jsonl"}}), run.config_path)
    run.eval_json.write_text(json.dumps({"metrics": {"accuracy": 0.9}}))
    if passed is not None:
        check = {"name": "against_base", "title": "beats the base model", "status": "passed" if passed else "failed",
                 "reason": "accuracy +0.2 [+0.1, +0.3] over the base on 8 rows; required: better"}
        run.gate_json.write_text(json.dumps({"version": GATE_VERSION, "passed": passed, "run": root.name,
                                             "eval_sha256": file_sha256(run.eval_json), "checks": [check]}))
    return root


def test_a_passed_run_is_promoted_and_each_promotion_is_a_line(tmp_path):
    first, second = run_folder(tmp_path / "runs" / "round-1"), run_folder(tmp_path / "runs" / "round-2")
    record = promote(first)
    marker = default_marker(RunDir(first))
    assert marker == tmp_path / "runs" / "current" and os.readlink(marker) == "round-1"  # relative: folders move
    assert marked_run(marker).root == first.resolve()
    assert record["from"] is None and record["to"] == str(first.resolve()) and not record["forced"]
    assert record["gate"].startswith("gate passed") and record["passed"] is True
    promote(second, marker)
    assert marked_run(marker).root == second.resolve()
    lines = read_jsonl(marker.parent / PROMOTIONS_FILE)
    assert [(line["from"], line["to"]) for line in lines] == [(None, str(first.resolve())),
                                                              (str(first.resolve()), str(second.resolve()))]
    assert {"time", "marker", "gate", "forced"} <= set(lines[1])
    assert [path.name for path in marker.parent.iterdir() if path.name.startswith(".")] == []  # no staging left


@pytest.mark.parametrize(("passed", "stale", "message"), [
    (None, False, "has not passed a release gate"),
    (False, False, "failed its release gate: against_base"),
    (True, True, "judged an earlier evaluation"),
])
def test_an_ungated_failed_or_stale_run_is_refused_unless_forced(tmp_path, error_of, passed, stale, message):
    run = run_folder(tmp_path / "candidate", passed)
    if stale:
        RunDir(run).eval_json.write_text(json.dumps({"metrics": {"accuracy": 0.5}}))
    assert message in error_of(lambda: promote(run))
    assert not (tmp_path / "current").is_symlink() and not (tmp_path / PROMOTIONS_FILE).exists()
    record = promote(run, force=True)
    assert record["forced"] and record["gate"].endswith("(forced)")
    assert marked_run(tmp_path / "current").root == run.resolve()


def test_a_marker_that_is_a_folder_or_a_run_that_is_not_one_is_refused(tmp_path, error_of):
    run = run_folder(tmp_path / "round-1")
    (tmp_path / "current").mkdir()
    assert "is a folder, not a marker link" in error_of(lambda: promote(run))
    assert (tmp_path / "current").is_dir() and not (tmp_path / "current").is_symlink()
    (tmp_path / "plain").mkdir()
    assert "not a tunesmith run folder" in error_of(lambda: promote(tmp_path / "plain", tmp_path / "m"))


def test_a_marker_pointing_nowhere_says_so(tmp_path, error_of):
    assert "does not exist" in error_of(lambda: marked_run(tmp_path / "current"))
    os.symlink("gone", tmp_path / "current")
    assert "points to gone, which does not exist" in error_of(lambda: marked_run(tmp_path / "current"))
    (tmp_path / "plain").mkdir()
    os.replace(tmp_path / "current", tmp_path / "old")
    os.symlink("plain", tmp_path / "current")
    assert "not a tunesmith run folder" in error_of(lambda: marked_run(tmp_path / "current"))
    run = run_folder(tmp_path / "round-1")
    assert promote(run)["from"] == str((tmp_path / "plain").resolve())
    with pytest.raises(RunError):
        marked_run(tmp_path / "old")
