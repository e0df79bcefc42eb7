"""`tunesmith plan` from the command line: the plan, its JSON, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml


def test_plan_prints_the_plan_and_its_summary(plan_project, cli):
    code, out, error = cli("plan", plan_project(), "--no-probe", "--price-per-hour", "2.5")
    assert (code, error) == (0, "")
    assert "steps: 4 = " in out and "cost: ~" in out
    assert out.splitlines()[-1].startswith("plan: 12 training rows")


def test_plan_json(plan_project, cli):
    code, out, _ = cli("plan", plan_project(), "--no-probe", "--json", "--set", "train.max_steps=6")
    plan = json.loads(out)
    assert code == 0 and plan["counts"]["steps"] == 6 and plan["time"]["how"] == "table"


def test_plan_json_is_the_whole_stdout_of_the_command_and_its_log_goes_to_stderr(plan_project, tmp_path):
    config = plan_project()
    env = {**os.environ, "TUNESMITH_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "tunesmith", "plan", config, "--no-probe", "--json"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["counts"]["steps"] == 4
    assert "tokenized" in done.stderr  # the data stage's log lines


def test_a_bad_config_is_one_line(plan_project, cli, tmp_path):
    config = plan_project()
    code, _, error = cli("plan", config, "--no-probe", "--set", "train.batch_size=0")
    assert code == 2 and error.startswith("tunesmith: error: ") and "train.batch_size" in error
    settings = yaml.safe_load(open(config))
    settings["data"]["path"] = "missing.jsonl"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(settings), encoding="utf-8")
    code, _, error = cli("plan", str(tmp_path / "bad.yaml"), "--no-probe")
    assert code == 2 and "missing.jsonl" in error


def test_run_logs_the_plans_summary_before_training(plan_project, cli, caplog):
    caplog.set_level("INFO", logger="tunesmith")
    code, _, error = cli("train", plan_project())
    assert (code, error) == (0, "")
    lines = [record.getMessage() for record in caplog.records]
    summary = next(i for i, line in enumerate(lines) if line.startswith("plan: 12 training rows"))
    assert summary < next(i for i, line in enumerate(lines) if line.startswith("method lora"))
