"""The values training measures at every validation, as metrics.jsonl and `train_summary.json` name them: the
validation loss (``val_loss``) and the metrics of `train.val_metrics` (``val_<metric>``); and how a log line and
the run report write them."""

from __future__ import annotations

VAL_LOSS = "val_loss"
"""The validation loss: what chooses the best weights, and a sweep's default objective."""


def describe_validation(values: dict[str, float | None]) -> str:
    """``validation loss 0.1234, accuracy 0.9000`` (a metric the rows leave undefined, such as Pearson's r of
    constant answers, is ``n/a``)."""
    parts = [f"validation loss {values[VAL_LOSS]:.4f}"]
    for key, value in values.items():
        if key != VAL_LOSS:
            parts.append(f"{key.removeprefix('val_')} {'n/a' if value is None else f'{value:.4f}'}")
    return ", ".join(parts)
