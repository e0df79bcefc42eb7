"""A resume continues the run as it was configured: resumable settings are applied and recorded, any other
change is an error naming each key with its old and new value; runs are matched by their config file, not its
stem; damaged checkpoints are passed over."""

from __future__ import annotations

import json

import yaml

from tunesmith.run_dir import RunDir


def trained_run(project, cli, *extra: str) -> RunDir:
    code, out, error = cli("train", "config.yaml", "--set", "output.name=exp", *extra)
    assert code == 0, error
    return RunDir(project / "runs" / "exp")


def test_changed_settings_that_define_the_run_are_an_error_naming_each(project, cli):
    trained_run(project, cli)
    code, _, error = cli("train", "config.yaml", "--resume", "--set", "output.name=exp",
                         "--set", "train.learning_rate=0.001", "--set", "lora.r=8", "--set", "train.max_steps=6")
    assert code == 2 and error.startswith(
        "tunesmith: error: config: resuming runs/exp with changed settings: lora.r 2 → 8; train.learning_rate 0.01 → "
        "0.001 (a resume continues the run as it was configured")


def test_resumable_settings_are_applied_and_recorded(project, cli):
    run = trained_run(project, cli)
    code, _, error = cli("train", "config.yaml", "--resume", "--set", "output.name=exp",
                         "--set", "train.max_steps=6", "--set", "train.eval_every=3")
    assert code == 0, error
    saved = yaml.safe_load(run.config_path.read_text())
    assert saved["train"]["max_steps"] == 6 and saved["train"]["eval_every"] == 3
    assert json.loads(run.train_summary.read_text())["steps"] == 6


def test_resume_matches_the_config_file_not_its_stem(project, cli):
    (project / "other").mkdir()
    (project / "other" / "config.yaml").write_text((project / "config.yaml").read_text().replace(
        "data.jsonl", "../data.jsonl"))
    code, _, error = cli("train", "other/config.yaml", "--set", "output.dir=runs")
    assert code == 0, error
    code, _, error = cli("train", "config.yaml", "--resume", "--set", "output.dir=runs")
    assert code == 2 and "nothing to resume: no run of config.yaml under runs has a checkpoint" in error


def test_resume_of_a_missing_folder_is_one_line(project, cli):
    code, _, error = cli("train", "config.yaml", "--resume", "--run-dir", "runs/nope")
    assert code == 2 and error == ("tunesmith: error: nothing to resume: runs/nope does not exist (start the run "
                                   "without --resume)")


def test_a_damaged_latest_checkpoint_is_passed_over(project, cli, caplog):
    caplog.set_level("INFO", logger="tunesmith")
    run = trained_run(project, cli, "--set", "train.max_steps=4")
    (run.checkpoints / "step-000004" / "optimizer.pt").write_bytes(b"")  # a 0-byte file, as a full disk leaves
    (run.checkpoints / "step-000004" / "trainer_state.json").write_text('{"step": 4, "cur')  # cut short
    code, _, error = cli("train", "config.yaml", "--resume", "--set", "output.name=exp", "--set", "train.max_steps=5")
    assert code == 0, error
    assert "checkpoint step-000004 is damaged (" in caplog.text and "trying the one before it" in caplog.text
    assert "resumed from step-000002" in caplog.text
    steps = [line["step"] for line in map(json.loads, run.metrics.read_text().splitlines()) if "loss" in line]
    assert steps == [1, 2, 3, 4, 5]


def test_every_checkpoint_damaged_is_one_line(project, cli):
    run = trained_run(project, cli)
    for folder in run.checkpoints.glob("step-*"):
        (folder / "rng.pt").write_bytes(b"\x00" * 10)
    code, _, error = cli("train", "config.yaml", "--resume", "--set", "output.name=exp")
    assert code == 2 and error == ("tunesmith: error: nothing to resume: every checkpoint in runs/exp/checkpoints "
                                   "is damaged (start the run again without --resume)")


def test_a_torn_last_metrics_line_does_not_stop_a_resume(project, cli):
    run = trained_run(project, cli)
    with run.metrics.open("a") as handle:
        handle.write('{"step": 5, "lo')  # a kill mid-write
    code, _, error = cli("train", "config.yaml", "--resume", "--set", "output.name=exp", "--set", "train.max_steps=6")
    assert code == 0, error
    lines = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    assert [line["step"] for line in lines if "loss" in line] == [1, 2, 3, 4, 5, 6]
