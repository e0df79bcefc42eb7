"""Stage: evaluate. Task metrics, batched generation, label likelihood, and base-vs-tuned comparison."""

from tunesmith.evaluate.generation import generate
from tunesmith.evaluate.likelihood import label_token_ids, loss_and_perplexity, predict_labels, score_labels
from tunesmith.evaluate.metrics import (
    classification_metrics,
    generation_metrics,
    parse_number,
    regression_metrics,
)
from tunesmith.evaluate.runner import compare_run, evaluate_model, evaluate_run, format_comparison, resolve_task

__all__ = [
    "classification_metrics", "compare_run", "evaluate_model", "evaluate_run", "format_comparison", "generate",
    "generation_metrics", "label_token_ids", "loss_and_perplexity", "parse_number", "predict_labels",
    "regression_metrics", "resolve_task", "score_labels",
]
