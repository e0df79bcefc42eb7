"""Stage: train. Fine-tuning (LoRA or full) with validation, best-checkpoint selection and exact resume; the
recipe reads top to bottom in `tunesmith.train.recipe`. The loss it minimizes is `tunesmith.predict.loss`, which
evaluation's test loss shares."""

from tunesmith.train.recipe import TrainingError, train

__all__ = ["TrainingError", "train"]
