"""Stage: evaluate. The tuned model and its base on the test split (also without the rows leaked from train), the
test loss, classic baselines, and base-vs-tuned comparison. The answers and task metrics are `tunesmith.predict`'s."""

from tunesmith.evaluate.baselines import baseline_scores, run_baselines
from tunesmith.evaluate.compare import baseline_verdict, best_baseline, compare_run, comparison_table, format_comparison
from tunesmith.evaluate.likelihood import loss_and_perplexity
from tunesmith.evaluate.runner import evaluate_run
from tunesmith.evaluate.tasks import evaluate_model, resolve_task

__all__ = [
    "baseline_scores", "baseline_verdict", "best_baseline", "compare_run", "comparison_table", "evaluate_model",
    "evaluate_run", "format_comparison", "loss_and_perplexity", "resolve_task", "run_baselines",
]
