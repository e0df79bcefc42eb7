"""Reading run folders for the UI: which folders are runs, their rows and statuses, curves of a run that is still
writing, and config differences."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

from tunesmith.predict.validation_values import STEP_MEASURES, VALIDATION_MEASURES
from tunesmith.run_dir import RunDir
from tunesmith.ui.runs import (
    config_differences,
    curves,
    find_runs,
    flatten,
    planned_steps,
    progress_note,
    run_row,
    run_status,
)


def test_runs_and_sweep_trials_are_found_by_name_and_other_folders_are_not(runs_dir):
    assert list(find_runs(runs_dir)) == ["sms-sweep-1/trials/trial-0000", "sms-sweep-1/trials/trial-0001",
                                         "sms-sweep-1/trials/trial-0002",
                                         "spam-done", "spam-full", "spam-live", "spam-lr-high", "spam-stopped"]
    assert find_runs(runs_dir / "missing") == {}


def test_the_promotion_marker_is_not_listed_as_a_run_of_its_own(runs_dir):
    (runs_dir / "current").symlink_to("spam-done", target_is_directory=True)
    try:
        assert "current" not in find_runs(runs_dir) and "spam-done" in find_runs(runs_dir)
    finally:
        (runs_dir / "current").unlink()


def test_a_row_has_the_key_settings_the_test_metrics_and_the_delta(runs_dir):
    row = run_row("spam-lr-high", RunDir(runs_dir / "spam-lr-high"))
    assert (row.task, row.method, row.status) == ("classification", "lora", "done")
    assert row.settings == {"lr": 1e-3, "steps": 10, "r": 8, "alpha": 16.0}
    assert list(row.metrics) == ["accuracy", "f1", "loss"]  # the task's metrics in their order, then the loss
    assert row.metrics["accuracy"] == 0.75 and row.deltas["accuracy"] == 0.25


def test_status_follows_the_lock_holder(tmp_path, runs_dir, live_lock):
    assert run_row("spam-live", RunDir(live_lock)).status == "running"
    assert run_row("spam-stopped", RunDir(runs_dir / "spam-stopped")).status == "stopped"
    dead = RunDir(shutil.copytree(runs_dir / "spam-stopped", tmp_path / "spam-stopped"))
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    holder = {"pid": int(process.stdout), "host": socket.gethostname(), "command": "tunesmith train"}
    dead.lock_file.write_text(json.dumps(holder))
    assert run_row("spam-stopped", dead).status == "stopped"  # its process ended (a killed run leaves the record)
    dead.lock_file.write_text(json.dumps(holder | {"pid": os.getpid()}))
    assert run_row("spam-stopped", dead).status == "running"
    os.utime(dead.lock_file, (0, 0))  # written long before this process started: the pid was reused
    assert run_row("spam-stopped", dead).status == "stopped"
    dead.lock_file.write_text(json.dumps(holder | {"pid": os.getpid(), "host": "elsewhere"}))
    assert run_row("spam-stopped", dead).status == "stopped"  # another machine's process: not known to run



def test_a_run_whose_stage_failed_reads_failed_until_it_finishes(tmp_path, runs_dir):
    run = RunDir(shutil.copytree(runs_dir / "spam-stopped", tmp_path / "spam-stopped"))
    run.failure.write_text(json.dumps({"stage": "train", "error": "out of memory", "time": "2026-11-30T12:00:00"}))
    assert run_row("spam-stopped", run).status == "failed"
    run.eval_json.write_text(json.dumps({"task": "classification", "tuned": {"accuracy": 0.5}}))
    assert run_row("spam-stopped", run).status == "done"

def test_with_both_eval_and_failure_the_newer_file_decides_the_one_status(tmp_path, runs_dir):
    run = RunDir(shutil.copytree(runs_dir / "spam-stopped", tmp_path / "spam-stopped"))
    run.eval_json.write_text(json.dumps({"task": "classification", "tuned": {"accuracy": 0.5}}))
    run.failure.write_text(json.dumps({"stage": "report", "error": "disk full", "time": "2026-11-30T12:00:00"}))
    os.utime(run.eval_json, (1_000, 1_000))
    os.utime(run.failure, (2_000, 2_000))
    assert run_status(run) == "failed"  # a stage failed after the evaluation
    os.utime(run.eval_json, (3_000, 3_000))
    assert run_status(run) == "done"  # evaluated again after the failure
    os.utime(run.failure, (3_000, 3_000))
    assert run_status(run) == "done"  # a tie goes to the evaluation


def _metrics(run: RunDir, steps: int, seconds_per_step: float = 1.0, epoch_steps: int | None = None) -> None:
    lines = [{"step": step, "loss": 9.0 / step, "elapsed_s": step * seconds_per_step}
             | ({"epoch": round(step / epoch_steps, 4)} if epoch_steps else {}) for step in range(1, steps + 1)]
    run.metrics.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_the_progress_note_gives_the_total_and_the_time_left(tmp_path, runs_dir):
    run = RunDir(shutil.copytree(runs_dir / "spam-stopped", tmp_path / "run"))  # train.max_steps: 10
    _metrics(run, 4, seconds_per_step=30.0)
    assert progress_note(run, "running") == "step 4 of 10, about 3 minutes left"
    assert progress_note(run, "stopped") == "stopped at step 4 of 10"
    _metrics(run, 1)
    assert progress_note(run, "running") == "step 1 of 10"  # one step gives no pace yet
    _metrics(run, 9, seconds_per_step=2.0)
    assert progress_note(run, "running") == "step 9 of 10, under a minute left"
    _metrics(run, 10)
    assert progress_note(run, "done") == "10 training steps"
    run.metrics.write_text("")
    assert progress_note(run, "running") == "no training step logged yet"
    run.train_summary.write_text(json.dumps({"planned_steps": 1, "steps": 1}))
    _metrics(run, 1)
    assert progress_note(run, "done") == "1 training step"


def test_planned_steps_follow_the_epochs_when_max_steps_is_not_set(tmp_path, runs_dir):
    run = RunDir(shutil.copytree(runs_dir / "spam-stopped", tmp_path / "run"))
    run.config_path.write_text(run.config_path.read_text().replace("max_steps: 10", "max_steps: null")
                               .replace("epochs: auto", "epochs: 2"))
    _metrics(run, 7, epoch_steps=50)
    assert planned_steps(run, {"step": 7, "epoch": 0.14}) == 100
    assert progress_note(run, "running") == "step 7 of 100, about 2 minutes left"
    assert planned_steps(run, {"step": 7}) is None  # no epoch fraction: not known (until a checkpoint says)
    checkpoint = run.root / "checkpoints" / "step-000005"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"step": 5, "budget": {"steps": 120}}))
    assert planned_steps(run, {"step": 7}) == 120


def test_curves_skip_a_line_cut_off_mid_write_and_non_numbers(tmp_path):
    run = RunDir(tmp_path)
    run.metrics.write_text('{"step": 1, "loss": 2.5, "lr": 0.1}\n{"step": 2, "loss": null}\n'
                           '{"step": 2, "val_loss": 2.0, "val_accuracy": 0.5}\n{"step": 3, "lo')
    assert curves(run) == {"loss": [[1, 2.5]], "val_loss": [[2, 2.0]], "val_accuracy": [[2, 0.5]]}


def test_curves_hold_a_preference_run_s_rewards_and_accuracy_per_step(tmp_path):
    run = RunDir(tmp_path)
    step = {"step": 1, "loss": 0.69, "lr": 0.1, "pairs": 8, **{key: 0.25 * index for index, key in
                                                               enumerate(STEP_MEASURES)}}
    validation = {"step": 1, "val_loss": 0.6, **{key: 0.5 for key in VALIDATION_MEASURES}}
    run.metrics.write_text(json.dumps(step) + "\n" + json.dumps(validation) + "\n")
    series = curves(run)
    assert set(series) == {"loss", "val_loss", *STEP_MEASURES, *VALIDATION_MEASURES}
    assert [series[key] for key in STEP_MEASURES] == [[[1, 0.0]], [[1, 0.25]], [[1, 0.5]], [[1, 0.75]]]


def test_config_differences_list_only_the_keys_that_differ():
    first = {"train": {"learning_rate": 1e-4, "epochs": 1}, "lora": {"r": 8}, "model": {"name": "m"},
             "output": {"dir": "runs", "name": "a"}}
    second = {"train": {"learning_rate": 2e-4, "epochs": 1}, "lora": {"r": 8}, "model": {"name": "m"}, "extra": [1],
              "output": {"dir": "/elsewhere/runs", "name": "b"}}  # where a run was written is no difference
    assert config_differences({"a": first, "b": second}) == [("train.learning_rate", [1e-4, 2e-4]),
                                                            ("extra", [None, [1]])]
    assert flatten({"a": {"b": {"c": 1}, "d": {}}}) == {"a.b.c": 1, "a.d": {}}
