"""`train.report_to`: the trackers get the config, every metrics.jsonl value at its step, the evaluation's numbers
and the report and adapter. A recording tracker checks the plumbing everywhere; MLflow's local store (read back
with MlflowClient), W&B's offline files and Trackio's local database are checked where those packages are
installed (the dev extra installs them). Nothing touches the
network."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import tunesmith.tracking.trackers as trackers
from tunesmith.errors import ConfigError
from tunesmith.run_dir import RunDir

SETTINGS = {
    "data": {"path": "data.jsonl", "split": {"validation": 0.25, "test": 0.25}, "max_length": 256},
    "lora": {"r": 2, "alpha": 4, "target_modules": ["q_proj", "v_proj"]},
    "train": {"max_steps": 4, "batch_size": 4, "eval_every": 2, "save_every": 2, "warmup_ratio": 0.0},
    "evaluate": {"batch_size": 4, "num_examples": 2, "compare_base": False},
}


@pytest.fixture()
def tracked_project(tmp_path, tiny_model_dir, spam_rows, write_jsonl, monkeypatch):
    """``tracked_project(report_to)``: a config and 24 rows in the working directory, no tracker settings from
    the environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "WANDB_MODE", "WANDB_PROJECT", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    write_jsonl(tmp_path / "data.jsonl", spam_rows(24))

    def make(report_to: list[str]) -> Path:
        config = {"model": {"name": str(tiny_model_dir)}, **SETTINGS,
                  "train": {**SETTINGS["train"], "report_to": report_to}}
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        return tmp_path

    return make


class Recording:
    """A tracker that keeps what it is given (one list per class, shared by the stages' instances)."""

    name = "mlflow"
    calls: list = []

    def __init__(self, run, params, state):
        new = "id" not in state
        state.setdefault("id", "rec-1")
        self.calls.append(("open", state["id"], dict(params) if new else None))

    def metrics(self, values, step):
        self.calls.append(("metrics", dict(values), step))

    def artifact(self, path, kind):
        self.calls.append(("artifact", Path(path).name, kind))

    def close(self, failed):
        self.calls.append(("close", failed))


@pytest.fixture()
def recording(monkeypatch):
    Recording.calls = []
    monkeypatch.setitem(trackers.BACKENDS, "mlflow", Recording)
    monkeypatch.setattr(trackers, "require_tracker", lambda needed_by, tracker: None)
    return Recording.calls


def metrics_lines(run: RunDir) -> list[dict]:
    return [json.loads(line) for line in run.metrics.read_text().splitlines()]


def test_numbers_flatten_and_leave_out_text_and_non_finite():
    assert trackers.numbers({"step": 2, "a": 1, "b": {"c": 0.5, "d": "x"}, "e": None, "f": float("nan"),
                             "g": True}) == {"step": 2.0, "a": 1.0, "b/c": 0.5, "g": 1.0}
    assert trackers.eval_numbers({"tuned": {"accuracy": 0.75}, "base": None, "delta": {"accuracy": 0.25}}) == {
        "eval/tuned/accuracy": 0.75, "eval/delta/accuracy": 0.25}
    assert trackers.gate_numbers({"passed": False, "checks": [{"name": "calibration", "value": 0.1},
                                                              {"name": "latency", "value": None}]}) == {
        "gate/passed": 0.0, "gate/calibration": 0.1}


def test_an_unknown_tracker_is_a_config_error_naming_the_choices(tmp_path):
    from tunesmith.config.loading import load_config

    path = tmp_path / "c.yaml"
    path.write_text("model: {name: x}\ndata: {path: d.jsonl}\ntrain: {report_to: [tensorboard, neptune]}\n")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert "train.report_to: 'neptune': not a tracker; choose from tensorboard, mlflow, wandb, trackio" in str(
        raised.value)


def test_a_run_sends_config_metrics_evaluation_and_files_to_its_tracker(tracked_project, cli, recording):
    project = tracked_project(["mlflow"])
    code, _, error = cli("run", "config.yaml", "--set", "output.name=exp")
    assert code == 0, error
    run = RunDir(project / "runs" / "exp")
    opened = [call for call in recording if call[0] == "open"]
    assert opened[0][2]["train.max_steps"] == "4" and opened[0][2]["method"] == "lora"
    assert all(call[2] is None for call in opened[1:])  # later stages add to the same tracker run
    assert json.loads(run.trackers_json.read_text()) == {"mlflow": {"id": "rec-1"}}
    stepped = [(call[2], call[1]) for call in recording if call[0] == "metrics" and call[2] is not None]
    expected = [(line["step"], trackers.numbers({k: v for k, v in line.items() if k != "step"}))
                for line in metrics_lines(run)]
    assert stepped == expected and any("val_loss" in values for _, values in stepped)
    results = [call[1] for call in recording if call[0] == "metrics" and call[2] is None]
    evaluation = json.loads(run.eval_json.read_text())
    assert results[0] == trackers.eval_numbers(evaluation) and "eval/tuned/accuracy" in results[0]
    assert {call[1:] for call in recording if call[0] == "artifact"} == {
        ("report.md", "report"), ("report.html", "report"), ("adapter", "adapter")}
    assert recording[-1] == ("close", False)
    assert not run.tensorboard.exists()  # report_to without tensorboard writes no events


def test_tensorboard_alone_opens_no_tracker(tracked_project, cli, recording):
    project = tracked_project(["tensorboard"])
    code, _, error = cli("train", "config.yaml", "--set", "output.name=exp")
    assert code == 0, error
    assert recording == [] and not RunDir(project / "runs" / "exp").trackers_json.exists()
    assert (project / "runs" / "exp" / "tensorboard").is_dir()


def test_mlflow_local_store_holds_params_metrics_evaluation_and_artifacts(tracked_project, cli):
    pytest.importorskip("mlflow", reason="the mlflow extra is not installed here")
    from mlflow.tracking import MlflowClient

    project = tracked_project(["tensorboard", "mlflow"])
    code, _, error = cli("run", "config.yaml", "--set", "output.name=exp")
    assert code == 0, error
    run = RunDir(project / "runs" / "exp")
    ids = json.loads(run.trackers_json.read_text())["mlflow"]
    assert ids["tracking_uri"] == f"sqlite:///{(project / 'runs' / 'mlflow.db').resolve()}"
    client = MlflowClient(tracking_uri=ids["tracking_uri"])
    found = client.get_run(ids["run_id"])
    assert found.info.status == "FINISHED" and found.info.run_name == "exp"
    assert found.data.params["train.max_steps"] == "4"
    lines = metrics_lines(run)
    for name in ("loss", "lr", "val_loss"):
        history = [(point.step, point.value) for point in client.get_metric_history(ids["run_id"], name)]
        assert sorted(history) == [(line["step"], pytest.approx(line[name])) for line in lines if name in line]
    evaluation = json.loads(run.eval_json.read_text())
    assert found.data.metrics["eval/tuned/accuracy"] == pytest.approx(evaluation["tuned"]["accuracy"])
    artifacts = {item.path for item in client.list_artifacts(ids["run_id"])}
    assert {"report", "adapter"} <= artifacts
    assert {Path(item.path).name for item in client.list_artifacts(ids["run_id"], "report")} >= {"report.md"}


def test_wandb_runs_offline_into_the_run_folder(tracked_project, cli):
    pytest.importorskip("wandb", reason="the wandb extra is not installed here")
    project = tracked_project(["wandb"])
    code, _, error = cli("train", "config.yaml", "--set", "output.name=exp")
    assert code == 0, error
    offline = list((project / "runs" / "exp" / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(offline) == 1, "W&B wrote no offline run file"
    # W&B 0.2x+ has no Python reader of its records (its core is Go); its records hold each history value as the
    # JSON text of the number, so every metrics.jsonl value must be in the file under its name.
    records = offline[0].read_bytes()
    for line in metrics_lines(RunDir(project / "runs" / "exp")):
        for name, value in line.items():
            assert name.encode() in records and json.dumps(value).encode() in records, (name, value)
    assert b"train.max_steps" in records  # the config


def test_trackio_keeps_config_and_metrics_in_its_local_database(tracked_project, tmp_path):
    pytest.importorskip("trackio", reason="the trackio extra is not installed here")
    project = tracked_project(["trackio"])
    # Trackio fixes its folder when imported, so the run and the read-back are processes of their own.
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "TUNESMITH_CACHE": str(tmp_path / "cache")}
    done = subprocess.run([sys.executable, "-m", "tunesmith", "train", "config.yaml", "--set", "output.name=exp"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "Trackio" not in done.stdout  # its banner goes to stderr
    read = ("import json; from trackio.sqlite_storage import SQLiteStorage as S; "
            "print(json.dumps({'runs': S.get_runs('tunesmith'), 'logs': S.get_logs('tunesmith', 'exp'), "
            "'config': S.get_run_config('tunesmith', 'exp')}, default=str))")
    stored = json.loads(subprocess.run([sys.executable, "-c", read], env=env, capture_output=True, text=True,
                                       check=True, timeout=120).stdout)
    assert stored["runs"] == ["exp"] and stored["config"]["train.max_steps"] == "4"
    logged = {(row["step"], name): value for row in stored["logs"] for name, value in row.items()
              if isinstance(value, float)}
    for line in metrics_lines(RunDir(project / "runs" / "exp")):
        for name in ("loss", "val_loss"):
            if name in line:
                assert logged[(line["step"], name)] == pytest.approx(line[name])


def test_the_gate_result_goes_to_the_same_tracker_run_and_other_ranks_log_nothing(tmp_path, recording,
                                                                                   monkeypatch):
    from tunesmith import distributed
    from tunesmith.config import validate_config

    config = validate_config({"data": {"train": "a.jsonl"}, "train": {"report_to": ["mlflow"]}})
    run = RunDir(tmp_path / "exp")
    run.root.mkdir()
    run.trackers_json.write_text('{"mlflow": {"id": "rec-7"}}')
    trackers.log_stage(run, config, trackers.gate_numbers({"passed": True, "checks": [{"name": "calibration",
                                                                                         "value": 0.02}]}))
    assert recording == [("open", "rec-7", None), ("metrics", {"gate/passed": 1.0, "gate/calibration": 0.02}, None),
                         ("close", False)]
    monkeypatch.setattr(distributed, "is_main", lambda: False)
    trackers.log_stage(run, config, {"gate/passed": 1.0})
    assert len(recording) == 3


def test_a_resume_may_add_a_tracker_which_gets_the_steps_after_the_checkpoint(tracked_project, cli, recording):
    project = tracked_project(["tensorboard"])
    code, _, error = cli("train", "config.yaml", "--set", "output.name=exp", "--set", "train.max_steps=2")
    assert code == 0, error
    assert recording == []
    code, _, error = cli("train", "config.yaml", "--resume", "--set", "output.name=exp",
                         "--set", "train.report_to=[tensorboard, mlflow]")
    assert code == 0, error
    steps = sorted({call[2] for call in recording if call[0] == "metrics" and call[2] is not None})
    assert steps == [3, 4]
    assert json.loads(RunDir(project / "runs" / "exp").trackers_json.read_text()) == {"mlflow": {"id": "rec-1"}}
