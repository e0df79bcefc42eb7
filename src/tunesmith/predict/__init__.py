"""A model's answers and their task metrics: batched generation, classification by label likelihood, and the
metrics of each task. Below both `train` (the metrics of `train.val_metrics` at every validation) and `evaluate`
(the test split), so the two score a model with the same functions. A run's answers in the terminal are here too
(`generate_text`, `chat_loop`: `tunesmith generate` and `chat`)."""

from tunesmith.predict.answers import Answers, answer, task_labels, task_metrics
from tunesmith.predict.chat import chat_loop, generate_text
from tunesmith.predict.generation import generate
from tunesmith.predict.labels import label_token_ids, predict_labels, score_labels
from tunesmith.predict.metrics import classification_metrics, generation_metrics, parse_number, regression_metrics

__all__ = [
    "Answers", "answer", "chat_loop", "classification_metrics", "generate", "generate_text", "generation_metrics",
    "label_token_ids", "parse_number", "predict_labels", "regression_metrics", "score_labels", "task_labels",
    "task_metrics",
]
