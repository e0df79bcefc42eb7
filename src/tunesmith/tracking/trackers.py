"""Experiment trackers (`train.report_to`): MLflow, Weights & Biases and Trackio, each through its own client.

A run folder is one tracker run. Each stage that logs (training, evaluation, the gate, the pipeline's end) opens
`Trackers`, logs and closes; `trackers.json` in the run folder keeps each tracker's run id, so the next stage, a
resume or a later `tunesmith evaluate` adds to the same tracker run. Offline first: MLflow writes a local store
(`mlflow.db` beside the run folder unless `MLFLOW_TRACKING_URI` says otherwise), W&B runs offline unless `WANDB_MODE`
is set, Trackio keeps its local database.

A tracker is never worth a run: one that fails (a server down, a full disk) logs one warning and is left out for
the rest of the stage; metrics.jsonl and TensorBoard keep everything. A missing package is different, since
nothing was logged yet: `require_trackers` stops before any work with the extra to install. Only rank 0 logs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from tunesmith import distributed
from tunesmith.config.changes import flat
from tunesmith.config.schema import RunConfig
from tunesmith.errors import RunError
from tunesmith.extras import require_tracker
from tunesmith.json_files import read_json, write_json
from tunesmith.run_dir import RunDir
from tunesmith.tracking.backends import BACKENDS

log = logging.getLogger("tunesmith")

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
        self.ids_path = run.trackers_json
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
