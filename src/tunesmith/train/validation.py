"""What training measures on the validation split at every validation: the loss, which chooses the best weights,
and the task metrics of `train.val_metrics`.

The metrics are scored by `tunesmith.predict`, the functions evaluation scores the test split with, and with
evaluation's settings (`evaluate.classification_mode`, `max_new_tokens`, `batch_size`): a validation accuracy
and a test accuracy measure the same thing. Why `predict` sits below `train` rather than the scorer being passed
in from above: a sweep, the pipeline and a user's script all call `train` directly, and each would have to build
the same scorer; the config (`train.val_metrics`) is enough to say what to measure.

Scoring must not change training: the model is scored in eval mode (no dropout) and put back in train mode, the
RNG state is restored afterwards, and the KV cache is asked for per call (the model's own `use_cache` stays off
for training). In a job of several processes every process scores its share of the rows and gets every answer
back (`per_row_sharded`), so all of them compute the same metrics.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from tunesmith.config.schema import RunConfig
from tunesmith.config.vocabulary import is_preference
from tunesmith.data.example import Example, Splits
from tunesmith.data.task import Task
from tunesmith.data.tokenize import TokenizedExample
from tunesmith.errors import ConfigError
from tunesmith.predict.answers import answer, task_metrics
from tunesmith.predict.loss import mean_supervised_loss
from tunesmith.predict.validation_values import VAL_LOSS
from tunesmith.train.preference import pair_validation


@dataclass
class ValidationSet:
    rows: Sequence[TokenizedExample]
    """Every validation row, tokenized: the validation loss (`TokenizedPair`s for a preference method)."""
    examples: list[Example]
    """The first `train.val_metrics_rows` validation rows, scored for `train.val_metrics` (none without them)."""
    task: Task
    """The run's task, whose label set the metrics are scored on."""


def check_val_metrics(config: RunConfig, splits: Splits, task: Task) -> None:
    """What `train.val_metrics` needs, checked once the data is read and before the model loads: metrics of the
    data's task and validation rows to score (the task's label set is checked when it is resolved)."""
    if not config.train.val_metrics:
        return
    config.train.check_val_metrics(task.name)
    if not splits.validation:
        raise ConfigError("train.val_metrics", "there are no validation rows to compute them on",
                          "give data.validation, or set data.split.validation above 0")


def validation_set(config: RunConfig, splits: Splits, task: Task, rows: Sequence[TokenizedExample]) -> ValidationSet:
    scored = list(splits.validation[: config.train.val_metrics_rows]) if config.train.val_metrics else []
    return ValidationSet(rows, scored, task)


def validate(loss_module, model, tokenizer, validation: ValidationSet, config: RunConfig) -> dict[str, float | None]:
    """``{"val_loss": ..., "val_<metric>": ...}`` of the model now (a preference method's: ``val_loss``,
    ``val_preference_accuracy``, ``val_reward_margin``, then its metrics). ``loss_module`` is the (wrapped)
    `SupervisedLoss` or `PreferenceLoss` training runs; ``model`` the causal LM inside it. The metrics are left
    out when the loss is not finite (the validation is skipped)."""
    values: dict[str, float | None]
    if is_preference(config.method):  # every process scores its share, in both
        values = pair_validation(loss_module, validation.rows, config.train.batch_size, tokenizer.pad_token_id)
    else:
        values = {VAL_LOSS: mean_supervised_loss(loss_module, validation.rows, config.train.batch_size,
                                                 tokenizer.pad_token_id)[0]}
    val_loss = values[VAL_LOSS]
    if validation.examples and math.isfinite(val_loss):
        with scoring(model):
            answers = answer(model, tokenizer, validation.examples, validation.task, config.evaluate)
        metrics = task_metrics(validation.task, validation.examples, answers.predictions)
        values.update({f"val_{name}": metrics[name] for name in config.train.val_metrics})
    return values


@contextmanager
def scoring(model: torch.nn.Module):
    """The model in eval mode, and the RNG as it was, for the block; then back to training as it was."""
    was_training = model.training
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        model.eval()
        try:
            yield
        finally:
            model.train(was_training)
