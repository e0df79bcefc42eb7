"""Experiment trackers (`train.report_to`): MLflow, Weights & Biases and Trackio, each through its own client.

A run folder is one tracker run. Each stage that logs (training, evaluation, the gate, the pipeline's end) opens
`Trackers`, logs and closes; `trackers.json` in the run folder keeps each tracker's run id, so the next stage, a
resume or a later `tunesmith evaluate` adds to the same tracker run. Offline first: MLflow writes a local store
(`mlruns/` beside the run folder unless `MLFLOW_TRACKING_URI` says otherwise), W&B runs offline unless `WANDB_MODE`
is set, Trackio keeps its local database.

A tracker is never worth a run: one that fails (a server down, a full disk) logs one warning and is left out for
the rest of the stage; metrics.jsonl and TensorBoard keep everything. A missing package is different, since
nothing was logged yet: `require_trackers` stops before any work with the extra to install. Only rank 0 logs.
"""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any

from tunesmith import distributed
from tunesmith.config.changes import flat
from tunesmith.config.schema import RunConfig
from tunesmith.errors import RunError
from tunesmith.extras import require_tracker
from tunesmith.json_files import read_json, write_json
from tunesmith.run_dir import RunDir

log = logging.getLogger("tunesmith")

PROJECT = "tunesmith"
"""MLflow experiment, W&B and Trackio project, unless `MLFLOW_EXPERIMENT_NAME`, `WANDB_PROJECT` or
`TRACKIO_PROJECT` name another."""


def tracker_names(config: RunConfig) -> list[str]:
    """The trackers of `train.report_to` that this module logs to (TensorBoard is `TrainingLog`'s)."""
    return [name for name in config.train.report_to if name != "tensorboard"]


def require_trackers(config: RunConfig) -> None:
    """A `MissingExtraError` naming the extra of the first tracker of `train.report_to` whose package is missing."""
    for name in tracker_names(config):
        require_tracker(f"train.report_to: {name}", name)


def numbers(values: dict, prefix: str = "") -> dict[str, float]:
    """The finite numbers of ``values``, nested mappings flattened with ``/`` (bools as 0/1; text, None left out)."""
    found: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            found.update(numbers(value, f"{prefix}{key}/"))
        elif isinstance(value, (int, float)) and value == value and abs(value) != float("inf"):
            found[f"{prefix}{key}"] = float(value)
    return found


def eval_numbers(evaluation: dict) -> dict[str, float]:
    """eval.json's headline numbers: each model's metrics and the deltas, as ``eval/<tuned|base|delta>/<metric>``."""
    return numbers({part: evaluation.get(part) or {} for part in ("tuned", "base", "delta")}, "eval/")


def gate_numbers(gate: dict) -> dict[str, float]:
    """gate.json's verdict (``gate/passed``, 1 or 0) and each check's measured value."""
    values = {"gate/passed": float(bool(gate.get("passed")))}
    for check in gate.get("checks") or []:
        value = check.get("value")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value == value:
            values[f"gate/{check.get('name')}"] = float(value)
    return values


class Trackers:
    """The trackers of `train.report_to` for one stage of ``run``: ``with Trackers(run, config) as trackers``.

    Every method logs to each tracker still working; a tracker that raises is warned about once and dropped. In a
    job of several processes only rank 0 logs; the others' `Trackers` does nothing.
    """

    def __init__(self, run: RunDir, config: RunConfig):
        self.run, self.live = run, []
        if not distributed.is_main() or not tracker_names(config):
            return
        require_trackers(config)
        self.ids_path = run.root / "trackers.json"
        try:
            ids = read_json(self.ids_path) or {}
        except RunError:
            ids = {}  # damaged: new tracker runs rather than none
        params = {key: _param(value) for key, value in flat(config).items()}
        for name in tracker_names(config):
            state = dict(ids.get(name) or {})
            try:
                self.live.append(BACKENDS[name](run, params, state))
            except Exception as error:  # noqa: BLE001 - a tracker never stops a run
                _warn(name, error)
                continue
            ids[name] = state
        write_json(self.ids_path, ids)

    def __enter__(self) -> Trackers:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close(failed=exc_info[0] is not None)

    def metrics(self, values: dict, step: int | None = None) -> None:
        """Numbers (``numbers`` of ``values``) at ``step``: metrics.jsonl's lines keep their names and steps."""
        found = numbers({key: value for key, value in values.items() if key != "step"})
        if found:
            self._each(lambda tracker: tracker.metrics(found, step))

    def artifact(self, path: Path, kind: str) -> None:
        """A file or folder (``kind``: ``report``, ``adapter``), when it exists."""
        if path.exists():
            self._each(lambda tracker: tracker.artifact(path, kind))

    def close(self, failed: bool = False) -> None:
        self._each(lambda tracker: tracker.close(failed))
        self.live = []

    def _each(self, call) -> None:
        for tracker in list(self.live):
            try:
                call(tracker)
            except Exception as error:  # noqa: BLE001 - a tracker never stops a run
                _warn(tracker.name, error)
                self.live.remove(tracker)


def log_stage(run: RunDir, config: RunConfig, values: dict[str, float]) -> None:
    """Log one stage's results (``eval_numbers``, ``gate_numbers``) to the run's trackers."""
    with Trackers(run, config) as trackers:
        trackers.metrics(values)


def log_outputs(run: RunDir, config: RunConfig) -> None:
    """The pipeline's end: the report and the adapter as artifacts, and the tracker runs marked finished."""
    with Trackers(run, config) as trackers:
        for path in (run.report_md, run.report_html):
            trackers.artifact(path, "report")
        trackers.artifact(run.adapter, "adapter")


def _warn(name: str, error: Exception) -> None:
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    log.warning("train.report_to: %s failed (%s: %s); left out for the rest of this stage, metrics.jsonl and the "
                "run folder keep everything", name, type(error).__name__, text[:300])


def _param(value: Any) -> str:
    # MLflow refuses long values (500 characters in older servers); lists of rows or prompts are cut, not dropped.
    text = value if isinstance(value, str) else repr(value) if not isinstance(value, (list, dict)) else str(value)
    return text if len(text) <= 500 else text[:497] + "..."


# ---- the trackers -----------------------------------------------------------------------------------------------


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
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(experiment_name)
        created = self.client.create_run(experiment_id, run_name=run.root.resolve().name,
                                         tags={"tunesmith.run_folder": str(run.root.resolve())})
        self.run_id = created.info.run_id
        items = [Param(key, value) for key, value in params.items()]
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
    """A file store in ``mlruns/`` beside the run folder (in `output.dir`): every run of a project in one store,
    `mlflow ui --backend-store-uri runs/mlruns` shows them side by side."""
    return (run.root.resolve().parent / "mlruns").as_uri()


class WandbTracker:
    """Weights & Biases, offline unless `WANDB_MODE` says otherwise (`wandb sync runs/<run>/wandb/offline-run-*`
    uploads later). Its files go in the run folder's ``wandb/``."""

    name = "wandb"

    def __init__(self, run: RunDir, params: dict[str, str], state: dict):
        import wandb

        self.wandb = wandb
        new = not state.get("id")
        state.setdefault("id", wandb.util.generate_id())
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
        trackio.init(project=os.environ.get("TRACKIO_PROJECT") or PROJECT, name=run.root.resolve().name,
                     config=params, resume="allow")
        state["name"] = run.root.resolve().name

    def metrics(self, values: dict[str, float], step: int | None) -> None:
        self.trackio.log(values, step=step)

    def artifact(self, path: Path, kind: str) -> None:
        return None  # no artifacts in Trackio

    def close(self, failed: bool) -> None:
        self.trackio.finish()


BACKENDS: dict[str, type] = {"mlflow": MlflowTracker, "wandb": WandbTracker, "trackio": TrackioTracker}
"""`train.report_to` name → its tracker (TensorBoard is `TrainingLog`'s)."""
