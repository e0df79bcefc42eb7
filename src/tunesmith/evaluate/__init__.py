"""Stage: evaluate. Task metrics, batched generation, label likelihood, classic baselines, and base-vs-tuned
comparison on the test split (also without the rows leaked from train)."""

from tunesmith.evaluate.baselines import baseline_scores, run_baselines
from tunesmith.evaluate.compare import baseline_verdict, best_baseline, compare_run, comparison_table, format_comparison
from tunesmith.evaluate.generation import generate
from tunesmith.evaluate.likelihood import label_token_ids, loss_and_perplexity, predict_labels, score_labels
from tunesmith.evaluate.metrics import (
    classification_metrics,
    generation_metrics,
    parse_number,
    regression_metrics,
)
from tunesmith.evaluate.runner import evaluate_run
from tunesmith.evaluate.tasks import evaluate_model, resolve_task

__all__ = [
    "baseline_scores", "baseline_verdict", "best_baseline", "classification_metrics", "compare_run",
    "comparison_table", "evaluate_model", "evaluate_run", "format_comparison", "generate", "generation_metrics",
    "label_token_ids", "loss_and_perplexity", "parse_number", "predict_labels", "regression_metrics", "resolve_task",
    "run_baselines", "score_labels",
]
