"""Nothing of the user's or of a run's records is replaced by a command's output: tunesmith writes only into folders
it made (`tunesmith.run_dir.require_ours`), no ``--out`` resolves into a folder's records
(`tunesmith.run_dir.check_out_target`), and a run folder's lock file holds no secret and goes with the lock."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from tunesmith.config import load_config
from tunesmith.pipeline import create_run
from tunesmith.review.store import ReviewPlan, ReviewPrompt, create_database
from tunesmith.run_dir import RunDir

HAND_WRITTEN = "# my settings, kept by hand\nmodel: {name: my-model}\ndata: {path: data.jsonl}\n"
REFUSED_HINT = ("tunesmith writes only into a new or empty folder, or one it made (name another folder, or move "
                "those files out of it)")


def record_hint(target: str, inside: str, folder: Path) -> str:
    return (f"tunesmith: error: {target} is {inside} of {folder.resolve()}, a record tunesmith reads back (name a "
            "file outside that folder, or a new name directly in it)")


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


@pytest.fixture()
def run(project) -> RunDir:
    """A run folder as `train` starts one (config.yaml, origin.json), with a review and some records."""
    config = load_config("config.yaml", ["output.name=exp"])
    made = create_run(config, "config.yaml")
    (made.root / "review").mkdir()
    create_database(made.root / "review" / "review.db", ReviewPlan(
        models=[("tuned", "tuned", None), ("base", "base", None)],
        prompts=[ReviewPrompt("test.jsonl:1", None, "question", None, None, {"tuned": "yes", "base": "no"})],
        items=[(0, "tuned", "base")], queues={"ann": [(0, "tuned", "base")]}, rubric=["correct"],
        show_reference=False))
    for record in (made.eval_json, made.predictions, made.metrics, made.report_html):
        record.write_text(f"{record.name} of the run\n", encoding="utf-8")
    return made


@pytest.mark.parametrize("resume", [[], ["--resume"]])
def test_train_into_a_folder_holding_the_user_s_config_is_refused_before_writing(project, cli, resume):
    (project / "mine").mkdir()
    (project / "mine" / "config.yaml").write_text(HAND_WRITTEN, encoding="utf-8")
    before = folder_bytes(project / "mine")
    code, _, error = cli("train", "config.yaml", "--run-dir", "mine", *resume)
    assert (code, error) == (2, f"tunesmith: error: mine is not a folder tunesmith made (it holds config.yaml); "
                                f"{REFUSED_HINT}")
    assert folder_bytes(project / "mine") == before
    assert [path.name for path in (project / "mine").iterdir()] == ["config.yaml"]  # not even a lock file


def test_review_export_never_replaces_the_review_database(run, cli):
    before = folder_bytes(run.root)
    target = str(run.root / "review" / "review.db")
    code, _, error = cli("review", "export", str(run.root), "--format", "csv", "--out", target, "--overwrite")
    assert (code, error) == (2, record_hint(f"--out {target}", "review/review.db", run.root))
    assert folder_bytes(run.root) == before


def test_an_out_through_a_symlink_into_a_run_is_refused(run, cli, project):
    (project / "judgments.csv").symlink_to(run.eval_json.resolve())
    before = folder_bytes(run.root)
    code, _, error = cli("review", "export", str(run.root), "--format", "csv", "--out", "judgments.csv", "--overwrite")
    shown = f"--out judgments.csv (it leads to {run.eval_json.resolve()})"
    assert (code, error) == (2, record_hint(shown, "eval.json", run.root))
    assert folder_bytes(run.root) == before
    code, _, error = cli("review", "export", str(run.root), "--format", "csv")  # its own file beside the records
    assert (code, error) == (0, "") and (run.root / "review_judgments.csv").is_file()


@pytest.mark.parametrize(("args", "option", "inside"), [
    (["init", "data.jsonl", "--out", "{run}/config.yaml", "--overwrite"], "--out", "config.yaml"),
    (["data", "clean", "data.jsonl", "{run}/predictions.jsonl", "--overwrite"], "OUT", "predictions.jsonl"),
    (["label", "export", "queue.db", "{run}/predictions.jsonl", "--overwrite"], "OUT", "predictions.jsonl"),
    (["feedback", "export", "logs", "{run}/metrics.jsonl", "--overwrite"], "OUT", "metrics.jsonl"),
    (["label", "create", "logs", "--out", "{run}/review/review.db", "--overwrite"], "--out", "review/review.db"),
    (["monitor", "logs", "--html", "{run}/report.html"], "--html", "report.html"),
])
def test_no_out_of_any_command_replaces_a_run_record(run, cli, make_queue, request_log, args, option, inside):
    make_queue(3)
    request_log([{"id": "r1", "time": 1.0, "model": "tuned", "status": 200}], run=run)
    before = folder_bytes(run.root)
    args = [arg.format(run=run.root) for arg in args]
    code, _, error = cli(*args)
    assert (code, error) == (2, record_hint(f"{option} {run.root / inside}", inside, run.root))
    assert folder_bytes(run.root) == before


def test_a_text_export_never_replaces_a_database(run, cli, make_queue, project):
    make_queue(3)
    before = (project / "queue.db").read_bytes()
    code, _, error = cli("review", "export", str(run.root), "--format", "jsonl", "--out", "queue.db", "--overwrite")
    assert (code, error) == (2, "tunesmith: error: --out queue.db is a database (SQLite), not a file this command "
                                "replaces (name another file)")
    assert (project / "queue.db").read_bytes() == before


def test_a_sweep_or_a_comparison_is_never_written_into_a_folder_not_its_own(run, cli, project, write_jsonl):
    (project / "notes").mkdir()
    (project / "notes" / "mine.txt").write_text("a user's file", encoding="utf-8")
    code, _, error = cli("sweep", "config.yaml", "--sweep-dir", "notes")
    assert (code, error) == (2, f"tunesmith: error: notes is not a folder tunesmith made (it holds mine.txt); "
                                f"{REFUSED_HINT}")
    write_jsonl(project / "documents.jsonl", [{"id": "d1", "text": "Spam is unsolicited mail."}])
    before = folder_bytes(run.root)
    code, _, error = cli("compare-rag", "config.yaml", "--out", str(run.root), "--set", "rag.documents=documents.jsonl",
                         "--set", "rag.gold_column=context_id")
    assert (code, error) == (2, f"tunesmith: error: {run.root} is a tunesmith run folder, not a comparison folder "
                                "(name another folder)")
    assert folder_bytes(run.root) == before and [p.name for p in (project / "notes").iterdir()] == ["mine.txt"]


def test_the_lock_file_holds_no_secret_is_the_owner_s_alone_and_goes_with_the_lock(project, cli, monkeypatch):
    seen = []
    repair = RunDir._repair

    def spying(self):  # runs while the lock is held, after the holder wrote its record
        seen.append((self.lock_file.read_text(encoding="utf-8"), stat.S_IMODE(self.lock_file.stat().st_mode)))
        return repair(self)

    monkeypatch.setattr(RunDir, "_repair", spying)
    secret = "postgresql://me:s3cret@db.example/x"
    code, _, error = cli("train", "config.yaml", "--set", "output.name=exp", "--set", f"data.system_prompt={secret}")
    assert (code, error) == (0, "")
    assert seen and all(json.loads(text)["command"] == "tunesmith train" and "s3cret" not in text and mode == 0o600
                        for text, mode in seen)
    assert not (project / "runs" / "exp" / ".lock").exists()
    assert json.loads((project / "runs" / "exp" / "origin.json").read_text())["made_by"] == "tunesmith"
