"""The trackers of `train.report_to` besides TensorBoard, one class each over the library's own client: opened
with the run folder, the flattened config and the tracker's entry of `trackers.json` (updated in place with the
ids that let a later stage add to the same tracker run); then ``metrics``, ``artifact`` and ``close``. Any of
them may raise: `tunesmith.tracking.trackers.Trackers` turns that into one warning."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
import uuid
from pathlib import Path

from tunesmith.run_dir import RunDir

PROJECT = "tunesmith"
"""MLflow experiment, W&B and Trackio project, unless `MLFLOW_EXPERIMENT_NAME`, `WANDB_PROJECT` or
`TRACKIO_PROJECT` name another."""


class MlflowTracker:
    """MLflow through `MlflowClient`, which names the run in every call: no process-wide active run to leak."""

    name = "mlflow"

    def __init__(self, run: RunDir, params: dict[str, str], state: dict):
        from mlflow.entities import Metric, Param
        from mlflow.tracking import MlflowClient

        self._metric, uri = Metric, os.environ.get("MLFLOW_TRACKING_URI") or mlflow_default_uri(run)
        self.client = MlflowClient(tracking_uri=uri)
        if state.get("tracking_uri") == uri and state.get("run_id"):
            self.run_id = state["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            return
        experiment_name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or PROJECT
        experiment = self.client.get_experiment_by_name(experiment_name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(
            experiment_name, artifact_location=mlflow_artifact_location(run, uri))
        created = self.client.create_run(experiment_id, run_name=run.root.resolve().name,
                                         tags={"tunesmith.run_folder": str(run.root.resolve())})
        self.run_id = created.info.run_id
        # MLflow names take letters, digits, _ - . / and spaces; a mapping's entry (a label) may hold others.
        named = {re.sub(r"[^\w\-. /]", "_", key): value for key, value in params.items()}
        items = [Param(key, value) for key, value in named.items()]
        for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(self.run_id, params=items[start : start + 100])
        state.update(tracking_uri=uri, run_id=self.run_id)

    def metrics(self, values: dict[str, float], step: int | None) -> None:
        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[self._metric(key, value, now, step or 0)
                                                    for key, value in values.items()])

    def artifact(self, path: Path, kind: str) -> None:
        if path.is_dir():
            self.client.log_artifacts(self.run_id, str(path), kind)
        else:
            self.client.log_artifact(self.run_id, str(path), kind)

    def close(self, failed: bool) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


def mlflow_default_uri(run: RunDir) -> str:
    """A SQLite store, ``mlflow.db`` beside the run folder (in `output.dir`): every run of a project in one store,
    `mlflow ui --backend-store-uri sqlite:///runs/mlflow.db` shows them side by side. (MLflow 3 refuses its
    file store unless told to allow it; SQLite is the local store it keeps developing.)"""
    return f"sqlite:///{run.root.resolve().parent / 'mlflow.db'}"


def mlflow_artifact_location(run: RunDir, uri: str) -> str | None:
    """Artifacts of a new experiment in the default store go to ``mlartifacts/`` beside the run folder (MLflow's
    own default is the current directory); in a store the user named, the server or store decides."""
    return (run.root.resolve().parent / "mlartifacts").as_uri() if uri == mlflow_default_uri(run) else None


class WandbTracker:
    """Weights & Biases, offline unless `WANDB_MODE` says otherwise (`wandb sync runs/<run>/wandb/offline-run-*`
    uploads later). Its files go in the run folder's ``wandb/``."""

    name = "wandb"

    def __init__(self, run: RunDir, params: dict[str, str], state: dict):
        import wandb

        self.wandb = wandb
        new = not state.get("id")
        state.setdefault("id", uuid.uuid4().hex[:8])  # W&B's own id form: 8 lowercase letters and digits
        self.label = re.sub(r"[^\w.-]+", "-", run.root.resolve().name)
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or PROJECT, name=run.root.resolve().name,
                              id=state["id"], resume="allow", dir=str(run.root), config=params if new else None,
                              mode=os.environ.get("WANDB_MODE") or "offline")

    def metrics(self, values: dict[str, float], step: int | None) -> None:
        if step is None:
            self.run.summary.update(values)  # results have no step; W&B's steps only go forward
        else:
            self.run.log(values, step=step)

    def artifact(self, path: Path, kind: str) -> None:
        artifact = self.wandb.Artifact(f"{self.label}-{kind}", type="model" if kind == "adapter" else kind)
        if path.is_dir():
            artifact.add_dir(str(path))
        else:
            artifact.add_file(str(path))
        self.run.log_artifact(artifact)

    def close(self, failed: bool) -> None:
        self.run.finish(exit_code=1 if failed else 0)


class TrackioTracker:
    """Trackio, in its local database (`trackio show` to look). It keeps metrics and config, not files: the
    report and adapter stay in the run folder."""

    name = "trackio"

    def __init__(self, run: RunDir, params: dict[str, str], state: dict):
        import trackio

        self.trackio = trackio
        with contextlib.redirect_stdout(sys.stderr):  # Trackio prints its banner; stdout is the commands' output
            trackio.init(project=os.environ.get("TRACKIO_PROJECT") or PROJECT, name=run.root.resolve().name,
                         config=params, resume="allow")
        state["name"] = run.root.resolve().name

    def metrics(self, values: dict[str, float], step: int | None) -> None:
        self.trackio.log(values, step=step)

    def artifact(self, path: Path, kind: str) -> None:
        return None  # no artifacts in Trackio

    def close(self, failed: bool) -> None:
        with contextlib.redirect_stdout(sys.stderr):
            self.trackio.finish()


BACKENDS: dict[str, type] = {"mlflow": MlflowTracker, "wandb": WandbTracker, "trackio": TrackioTracker}
"""`train.report_to` name → its tracker (TensorBoard is `TrainingLog`'s)."""
