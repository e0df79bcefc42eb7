"""A tracker's package missing stops the run before any work, in one line naming the extra; a tracker failing
mid-run (a server down) is warned about once and training goes on to the end."""

from __future__ import annotations

import importlib.util
import logging

import tunesmith.extras as extras
import tunesmith.tracking.trackers as trackers
from tunesmith.run_dir import RunDir


def test_a_missing_tracker_package_names_the_extra_before_any_work(project, cli, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(extras.importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    code, _, error = cli("run", "config.yaml", "--set", "output.name=exp", "--set", "train.report_to=[wandb]")
    assert code != 0
    assert error == "tunesmith: error: train.report_to: wandb needs the 'wandb' extra: pip install 'tunesmith[wandb]'"
    assert not (project / "runs" / "exp" / "checkpoints").exists()


class Down:
    """A tracker whose server goes away after the first metrics."""

    name = "mlflow"
    sent = 0

    def __init__(self, run, params, state):
        state["id"] = "down"

    def metrics(self, values, step):
        Down.sent += 1
        if Down.sent > 1:
            raise ConnectionError("Connection refused: http://127.0.0.1:5000")

    def artifact(self, path, kind):
        raise ConnectionError("Connection refused")

    def close(self, failed):
        raise ConnectionError("Connection refused")


def test_a_tracker_failing_mid_run_warns_once_and_training_finishes(project, cli, monkeypatch, caplog):
    Down.sent = 0
    monkeypatch.setitem(trackers.BACKENDS, "mlflow", Down)
    monkeypatch.setattr(trackers, "require_tracker", lambda needed_by, tracker: None)
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        code, _, error = cli("train", "config.yaml", "--set", "output.name=exp", "--set",
                             "train.report_to=[tensorboard,mlflow]")
    assert code == 0, error
    run = RunDir(project / "runs" / "exp")
    assert run.train_summary.is_file() and len(run.metrics.read_text().splitlines()) >= 4
    warnings = [record.getMessage() for record in caplog.records if "train.report_to: mlflow" in record.getMessage()]
    assert warnings == ["train.report_to: mlflow failed (ConnectionError: Connection refused: http://127.0.0.1:5000); "
                        "left out for the rest of this stage, metrics.jsonl and the run folder keep everything"]
    assert Down.sent == 2  # dropped after the failure: not called again at every step


def test_a_tracker_that_cannot_start_does_not_stop_training(project, cli, monkeypatch, caplog):
    class Unreachable(Down):
        def __init__(self, run, params, state):
            raise OSError("no route to the tracking server")

    monkeypatch.setitem(trackers.BACKENDS, "mlflow", Unreachable)
    monkeypatch.setattr(trackers, "require_tracker", lambda needed_by, tracker: None)
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        code, _, error = cli("train", "config.yaml", "--set", "output.name=exp", "--set", "train.report_to=[mlflow]")
    assert code == 0, error
    assert any("train.report_to: mlflow failed (OSError" in record.getMessage() for record in caplog.records)
