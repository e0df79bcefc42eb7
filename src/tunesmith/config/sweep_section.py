"""The `sweep:` section: the hyperparameter search of `tunesmith sweep`."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tunesmith.config.section import ConfigSection


class SweepConfig(ConfigSection):
    trials: int = Field(12, ge=1)
    """Trials to finish (done or pruned; a failed trial is replaced by one with other settings), over every worker
    of the study. No two trials get the same settings: a space of choices that holds fewer settings ends the search
    once every one was tried."""
    metric: str = "val_loss"
    """What the search optimizes, measured on the validation split: `val_loss`, or a metric of the task
    (classification accuracy, precision, recall, f1; regression mse, mae, pearson; generation bleu, rouge_l,
    exact_match), computed at every validation (`train.val_metrics`). The test split is never used to choose."""
    direction: Literal["minimize", "maximize"] | None = None
    """Whether lower or higher `metric` is better; null follows from the metric (loss and errors: minimize)."""
    sampler: Literal["tpe", "random", "grid"] = "tpe"
    """Optuna's sampler: `tpe` (Bayesian, the default), `random`, or `grid` (every combination of the choices
    once, in a random order; needs choice lists or stepped integers, at most 100,000 combinations)."""
    pruner: Literal["median", "hyperband", "none"] = "median"
    """Stops a trial early whose validation values (reported at every `train.eval_every`) fall behind: `median`
    (below the median of earlier trials at the same step), `hyperband`, or `none`."""
    timeout_minutes: float | None = Field(None, gt=0)
    """Start no trial after this many minutes of search (running trials finish); null: no limit."""
    seed: int = 0
    """Seed of the sampler; each trial's draw derives its own from it (the trials' own training seed is
    `train.seed`)."""
    params: dict[str, Any] = Field(default_factory=dict)
    """The search space: config key → a list of choices, `{uniform: [lo, hi]}`, `{log_uniform: [lo, hi]}`,
    `{int: [lo, hi], step: n}`, or for `lora.alpha` `{multiple_of_r: [1, 2, 4]}` (alpha = r times a choice)."""

