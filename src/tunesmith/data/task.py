"""What a run's models are scored on: the `Task`, resolved once from the run's config and its splits.

Its name comes from `evaluate.task` and the row format (`tunesmith.config.vocabulary.task_of`), its labels from the
data (or `data.label_names`), its metrics from `evaluate.metrics`. Training's validation metrics, evaluation, the
baselines, a review and a RAG comparison all score with the same `Task`, which the pipeline resolves with the
splits and passes to its stages (`tunesmith.data.run_inputs`).
"""

from __future__ import annotations

from dataclasses import dataclass

from tunesmith.config.schema import RunConfig
from tunesmith.config.vocabulary import TASK_METRICS, task_of
from tunesmith.data.example import Splits
from tunesmith.errors import ConfigError


@dataclass(frozen=True)
class Task:
    name: str
    """``classification``, ``regression`` or ``generation`` (`tunesmith.config.vocabulary.TASK_METRICS`)."""
    labels: list[str] | None
    """The label set classification is scored on, in a fixed order; None for the other tasks."""
    metrics: tuple[str, ...]
    """The task metrics evaluation reports: `evaluate.metrics`, else every metric of the task (the loss and
    perplexity are reported whatever it names)."""

    @classmethod
    def of(cls, name: str, labels: list[str] | None = None, metrics: list[str] | None = None) -> Task:
        """The task ``name`` scored on ``labels``, reporting ``metrics`` (every metric of the task when None)."""
        return cls(name, list(labels) if labels is not None else None,
                   tuple(metrics) if metrics is not None else TASK_METRICS[name])

    @classmethod
    def resolve(cls, config: RunConfig, splits: Splits) -> Task:
        """The task of a run whose data reads as ``splits``. A `ConfigError` when `evaluate.metrics` names a metric
        of another task, or when classification has no label set (neither the data nor `data.label_names`)."""
        name = task_of(config.evaluate.task, splits.format)
        config.evaluate.check_metrics(name)
        labels = None
        if name == "classification":
            labels = splits.labels or config.data.label_names
            if not labels:
                raise ConfigError(
                    "evaluate.task", f"{name} needs labelled rows, but the data format has no label set",
                    "use classification rows (text + label) or set data.label_names",
                )
        return cls.of(name, labels, config.evaluate.metrics)
