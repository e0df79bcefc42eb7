"""Stage 3: fine-tuning (LoRA or full) with validation, best-checkpoint selection and exact resume."""

from tunesmith.train.loop import TrainingError, train
from tunesmith.train.loss import mean_supervised_loss, supervised_loss_sum

__all__ = ["TrainingError", "mean_supervised_loss", "supervised_loss_sum", "train"]
