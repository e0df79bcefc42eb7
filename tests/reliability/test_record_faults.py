"""The record agrees with the weights (issue 23): a refused resume writes nothing; a resume refuses data files whose
contents changed; `checkpoints/best` and `train_summary.json` name the same step; no reader answers from a stale
`merged/`; `eval --no-base` keeps the base comparison; the hint after damaged best weights works when followed."""

from __future__ import annotations

import json
import re
import shlex

from safetensors.torch import load_file

from tunesmith.run_dir import RunDir
from tunesmith.train.best import BEST_RECORD


def trained_run(project, cli, *extra: str) -> RunDir:
    code, _, error = cli("train", "config.yaml", "--set", "output.name=exp", *extra)
    assert code == 0, error
    return RunDir(project / "runs" / "exp")


def folder_bytes(run: RunDir) -> dict:
    return {path.relative_to(run.root): path.read_bytes() for path in sorted(run.root.rglob("*")) if path.is_file()}


def assert_best_matches_summary(run: RunDir) -> None:
    """The check both records must pass: the summary's best step is the one best/ records, and when a checkpoint
    of that step is still there, best/ holds its very weights."""
    summary = json.loads(run.train_summary.read_text())
    record = json.loads((run.best / BEST_RECORD).read_text())
    assert record["step"] == summary["best_step"]
    assert record["val_loss"] == summary["best_val_loss"]
    step_weights = run.checkpoints / f"step-{summary['best_step']:06d}" / "weights" / "adapter_model.safetensors"
    if step_weights.is_file():
        best, saved = load_file(run.best / "adapter_model.safetensors"), load_file(step_weights)
        assert best.keys() == saved.keys() and all(best[name].equal(saved[name]) for name in best)


def test_a_refused_resume_rewrites_nothing(project, cli):
    run = trained_run(project, cli)
    before = folder_bytes(run)
    code, _, error = cli("train", "config.yaml", "--resume", "--set", "output.name=exp", "--set", "train.batch_size=2")
    assert code == 2 and error == (
        "tunesmith: error: runs/exp/checkpoints/step-000004 was trained with a global batch of 4 rows per step; now "
        "it would be 2 (batch_size 2 x 1 processes x grad_accumulation 1), which would not continue the same "
        "training (change train.batch_size or train.grad_accumulation (--set) so that their product with the number "
        "of processes is 4)")
    assert folder_bytes(run) == before  # config.yaml keeps batch_size 4; no timings.json, data summary or failure.json


def test_changed_data_contents_under_the_same_path_are_refused(project, cli, write_jsonl, spam_rows):
    run = trained_run(project, cli)
    data = project / "data.jsonl"  # the run's config records the data path resolved
    assert set(json.loads(run.train_summary.read_text())["data_files"]) == {str(data)}
    rows = spam_rows(24)
    rows[0], rows[1] = rows[1], rows[0]  # the same rows in another order: other contents, same path
    write_jsonl(project / "data.jsonl", rows)
    before = folder_bytes(run)
    code, _, error = cli("train", "config.yaml", "--resume", "--set", "output.name=exp", "--set", "train.max_steps=6")
    assert code == 2 and error == (
        f"tunesmith: error: cannot resume: {data} changed since runs/exp started training (its contents differ "
        "from those it trained on) (put the files back as they were, or train on the new data in a new run "
        "(without --resume))")
    assert folder_bytes(run) == before
    write_jsonl(project / "data.jsonl", spam_rows(24))  # put back: the resume goes on
    code, _, error = cli("train", "config.yaml", "--resume", "--set", "output.name=exp", "--set", "train.max_steps=6")
    assert code == 0, error
    assert json.loads(run.train_summary.read_text())["steps"] == 6


def test_best_and_summary_agree_after_a_fallback_past_a_damaged_checkpoint(project, cli, caplog):
    caplog.set_level("WARNING", logger="tunesmith")
    run = trained_run(project, cli, "--set", "train.eval_every=1")
    summary = json.loads(run.train_summary.read_text())
    assert summary["best_step"] == 4  # the last step is the best: best/ holds step 4's weights
    assert_best_matches_summary(run)
    (run.checkpoints / "step-000004" / "optimizer.pt").write_bytes(b"")  # damaged: the resume falls back to step 2
    # Back on step 2's timeline, a run of 3 steps (another schedule) never reaches step 4's weights again.
    code, _, error = cli("train", "config.yaml", "--resume", "--set", "output.name=exp", "--set", "train.max_steps=3")
    assert code == 0, error
    summary = json.loads(run.train_summary.read_text())
    assert summary["steps"] == 3 and summary["best_step"] in (2, 3)
    assert_best_matches_summary(run)
    assert ("runs/exp/checkpoints/best does not hold the best weights of step 2, which step-000002 names: wrote them "
            "again from the checkpoint of step 2") in caplog.text


def test_generate_does_not_answer_from_a_stale_merged_export(project, cli, caplog):
    run = trained_run(project, cli)
    code, _, error = cli("export", "runs/exp")
    assert code == 0, error
    code, _, error = cli("train", "config.yaml", "--resume", "--set", "output.name=exp", "--set", "train.max_steps=8")
    assert code == 0, error
    assert json.loads((run.best / BEST_RECORD).read_text())["step"] > 4  # training wrote new best weights
    caplog.set_level("WARNING", logger="tunesmith")
    code, stale_answer, error = cli("generate", "runs/exp", "--prompt", "Classify: win a free prize now",
                                    "--max-new-tokens", "4")
    assert code == 0, error
    assert ("runs/exp/merged is older than the run's best weights (it trained further since the export): answering "
            "from the best weights; `tunesmith export runs/exp` brings merged/ up to date") in caplog.text
    code, _, error = cli("export", "runs/exp")
    assert code == 0, error
    caplog.clear()
    code, fresh_answer, error = cli("generate", "runs/exp", "--prompt", "Classify: win a free prize now",
                                    "--max-new-tokens", "4")
    assert code == 0 and "older than" not in caplog.text
    assert fresh_answer == stale_answer  # the best weights, merged or not, give the same greedy answer


def test_eval_without_the_base_keeps_the_base_comparison(project, cli):
    run = trained_run(project, cli)
    code, _, error = cli("eval", "runs/exp")
    assert code == 0, error
    first = json.loads(run.eval_json.read_text())
    assert first["base"] is not None and first["base_key"]
    code, out, error = cli("eval", "runs/exp", "--no-base")
    assert code == 0, error
    kept = json.loads(run.eval_json.read_text())
    assert kept["base"] == first["base"] and kept["delta"] == first["delta"] and kept["base_key"] == first["base_key"]
    assert kept["base_kept"]["reason"].startswith("--no-base: the base model was not evaluated again")
    assert kept["base_kept"]["computed_at"] == first["base_cache"]["computed_at"]
    lines = [json.loads(line) for line in run.predictions.read_text().splitlines()]
    assert all(line["base_prediction"] is not None for line in lines)


def test_the_hint_after_damaged_best_weights_works_on_a_finished_run(project, cli):
    run = trained_run(project, cli)
    adapter = run.best / "adapter_model.safetensors"
    adapter.write_bytes(adapter.read_bytes()[:100])  # cut short, as a full disk leaves it
    code, _, error = cli("generate", "runs/exp", "--prompt", "hello", "--max-new-tokens", "2")
    assert code == 2 and error.startswith("tunesmith: error: cannot load the LoRA adapter in runs/exp/checkpoints/best")
    assert error.endswith("(the run's best weights are damaged; write them again from its checkpoints with "
                          "`tunesmith train runs/exp/config.yaml --resume --run-dir runs/exp`)")
    command = shlex.split(re.search(r"`tunesmith (.+)`", error).group(1))
    code, _, error = cli(*command)
    assert code == 0, error
    assert_best_matches_summary(run)
    code, answer, error = cli("generate", "runs/exp", "--prompt", "hello", "--max-new-tokens", "2")
    assert code == 0, error
