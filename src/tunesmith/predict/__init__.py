"""A model's answers, its loss and their task metrics: batched generation, classification by label likelihood,
the supervised loss (`loss`), the metrics of each task, and how validation values read. Below both `train` (its
loss, and the metrics of `train.val_metrics` at every validation) and `evaluate` (the test split, its loss), so
the two score a model with the same functions. A run's answers in the terminal are here too (`generate_text`,
`chat_loop`: `tunesmith generate` and `chat`)."""

from tunesmith.predict.answers import Answers, answer, task_metrics
from tunesmith.predict.chat import chat_loop, generate_text
from tunesmith.predict.generation import generate, generate_token_ids
from tunesmith.predict.labels import label_token_ids, predict_labels, score_labels
from tunesmith.predict.loss import SupervisedLoss, mean_supervised_loss, supervised_loss_sum
from tunesmith.predict.metrics import classification_metrics, generation_metrics, parse_number, regression_metrics
from tunesmith.predict.validation_values import VAL_LOSS, describe_validation

__all__ = [
    "VAL_LOSS", "Answers", "SupervisedLoss", "answer", "chat_loop", "classification_metrics", "describe_validation",
    "generate", "generate_text", "generate_token_ids", "generation_metrics", "label_token_ids",
    "mean_supervised_loss", "parse_number", "predict_labels", "regression_metrics", "score_labels",
    "supervised_loss_sum", "task_metrics",
]
