"""Stage: train. Fine-tuning (LoRA or full) with validation, best-checkpoint selection and exact resume; the
recipe reads top to bottom in `tunesmith.train.recipe`."""

from tunesmith.train.loss import mean_supervised_loss, supervised_loss_sum
from tunesmith.train.recipe import TrainingError, train, train_run

__all__ = ["TrainingError", "mean_supervised_loss", "supervised_loss_sum", "train", "train_run"]
