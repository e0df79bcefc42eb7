"""How long a run trains and how often it validates and checkpoints: the budget, fixed when the run starts and
kept in every checkpoint, so a resumed run finishes the plan it started (the learning-rate schedule depends on
the step count).

`train.epochs: auto` follows how hosted fine-tuning services choose the number of epochs from the dataset's size.
OpenAI's fine-tuning API takes `n_epochs: "auto"` ("decides the optimal number of epochs based on the size of the
dataset"), and the data-preparation notebook of the OpenAI Cookbook (`examples/Chat_finetuning_data_prep.ipynb`,
"Pricing and default n_epochs estimate") spells the rule out: 3 epochs, raised for small sets until 100 examples
are seen (at most 25 epochs), lowered for large ones so that no more than 25,000 are (at least 1). We keep that
rule and add a floor in optimizer steps: those services tune much larger models, and a small model's LoRA
adapters, started at zero, need more updates than a few epochs of a few hundred rows give (measured in
BENCHMARKS.md, "Defaults on small data").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from tunesmith.config.schema import TrainConfig

TARGET_EPOCHS = 3
MIN_EXAMPLES_SEEN = 100
MAX_EXAMPLES_SEEN = 25_000
MAX_EPOCHS = 25
MIN_STEPS = 200
"""The optimizer steps `auto` gives a run at least (up to `MAX_EPOCHS`), whatever the dataset's size."""
VALIDATIONS_PER_RUN = 10
"""`eval_every: auto`: enough validations to pick the best weights and to draw the curve; few enough that they
cost little next to the training steps."""


@dataclass(frozen=True)
class Budget:
    epochs: float
    """Passes over the training rows (with `train.max_steps`, the passes that many steps make)."""
    steps: int
    """Optimizer steps of the run."""
    eval_every: int
    save_every: int
    why: str
    """How the numbers were chosen, as the log says it."""

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Budget:
        return cls(**data)


def auto_epochs(rows: int, batches_per_epoch: int) -> tuple[int, str]:
    """`train.epochs: auto` for ``rows`` training rows in ``batches_per_epoch`` optimizer steps per epoch: the
    epochs, and why (for the log)."""
    if rows * TARGET_EPOCHS > MAX_EXAMPLES_SEEN:
        epochs = max(1, MAX_EXAMPLES_SEEN // rows)
        return epochs, (f"{rows:,} training rows: {TARGET_EPOCHS} epochs would show the model "
                        f"{rows * TARGET_EPOCHS:,} rows, more than the {MAX_EXAMPLES_SEEN:,} that are enough")
    needed = max(math.ceil(MIN_EXAMPLES_SEEN / rows), math.ceil(MIN_STEPS / batches_per_epoch))
    if needed <= TARGET_EPOCHS:
        return TARGET_EPOCHS, (f"{rows:,} training rows, {batches_per_epoch:,} steps per epoch: the default of "
                               f"{TARGET_EPOCHS} epochs makes {TARGET_EPOCHS * batches_per_epoch:,} steps")
    epochs = min(MAX_EPOCHS, needed)
    capped = f", capped at {MAX_EPOCHS} epochs" if needed > MAX_EPOCHS else ""
    return epochs, (f"{rows:,} training rows, {batches_per_epoch:,} steps per epoch: {TARGET_EPOCHS} epochs would "
                    f"make only {TARGET_EPOCHS * batches_per_epoch:,} steps; at least {MIN_STEPS} steps and "
                    f"{MIN_EXAMPLES_SEEN} rows seen{capped}")


def plan_budget(config: TrainConfig, rows: int, batches_per_epoch: int, started: Budget | None = None) -> Budget:
    """The run's budget from ``config``; ``started`` is the budget a resumed run was started with, whose `auto`
    choices stand (a number given on resume, such as a longer `max_steps`, applies)."""
    if config.max_steps:
        steps = config.max_steps
        epochs = steps / batches_per_epoch
        why = f"max_steps {steps:,} (train.max_steps overrides epochs: {epochs:.3g} epochs of {rows:,} rows)"
    elif config.epochs == "auto" and started is not None:
        steps, epochs, why = started.steps, started.epochs, started.why
    elif config.epochs == "auto":
        epochs, reason = auto_epochs(rows, batches_per_epoch)
        steps = epochs * batches_per_epoch
        why = f"epochs: auto → {epochs} ({reason})"
    else:
        epochs = config.epochs
        steps = max(1, math.ceil(epochs * batches_per_epoch))
        why = f"epochs {epochs:g} (train.epochs): {steps:,} steps of {batches_per_epoch:,} per epoch"
    # The auto intervals follow the steps: the started run's, unless a resume changed the steps.
    same = started if started is not None and started.steps == steps else None
    eval_every = _every(config.eval_every, same and same.eval_every, max(1, math.ceil(steps / VALIDATIONS_PER_RUN)))
    save_every = _every(config.save_every, same and same.save_every, eval_every)
    return Budget(epochs=epochs, steps=steps, eval_every=eval_every, save_every=save_every, why=why)


def _every(setting: int | str, started: int | None, auto: int) -> int:
    if setting != "auto":
        return int(setting)
    return started or auto


def describe_budget(budget: Budget, config: TrainConfig) -> str:
    """The log line of a budget: what was chosen, and why."""
    def every(key: str, value: int, reason: str) -> str:
        return f"{key}: auto → {value} ({reason})" if getattr(config, key) == "auto" else f"{key} {value}"

    return "; ".join([
        budget.why,
        every("eval_every", budget.eval_every, f"{VALIDATIONS_PER_RUN} validations in {budget.steps:,} steps"),
        every("save_every", budget.save_every, "at every validation"),
    ])
