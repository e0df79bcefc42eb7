"""The values training measures at every validation, as metrics.jsonl and `train_summary.json` name them: the
validation loss (``val_loss``) and the metrics of `train.val_metrics` (``val_<metric>``), a preference run's
measures at every step and validation; and how a log line and the run report write them."""

from __future__ import annotations

VAL_LOSS = "val_loss"
"""The validation loss: what chooses the best weights, and a sweep's default objective."""
STEP_MEASURES = ("rewards_chosen", "rewards_rejected", "reward_margin", "preference_accuracy")
"""What metrics.jsonl records of every step of a preference run, besides the loss (over the step's pairs;
`tunesmith.train.preference` measures them, the web UI's run page draws them)."""
VALIDATION_MEASURES = ("val_preference_accuracy", "val_reward_margin")
"""What a validation of a preference run records besides `val_loss`."""


def describe_validation(values: dict[str, float | None]) -> str:
    """``validation loss 0.1234, accuracy 0.9000`` (a metric the rows leave undefined, such as Pearson's r of
    constant answers, is ``n/a``)."""
    parts = [f"validation loss {values[VAL_LOSS]:.4f}"]
    for key, value in values.items():
        if key != VAL_LOSS:
            parts.append(f"{key.removeprefix('val_')} {'n/a' if value is None else f'{value:.4f}'}")
    return ", ".join(parts)
