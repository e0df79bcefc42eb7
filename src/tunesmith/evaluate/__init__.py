"""Stage: evaluate. The tuned model and its base on the test split (also without the rows leaked from train), the
test loss, classic baselines, and base-vs-tuned comparison. The answers and task metrics are `tunesmith.predict`'s;
the tables that read eval.json are `tunesmith.results`'."""

from tunesmith.evaluate.baselines import baseline_scores, run_baselines
from tunesmith.evaluate.compare import compare_run
from tunesmith.evaluate.likelihood import loss_and_perplexity
from tunesmith.evaluate.runner import evaluate_run
from tunesmith.evaluate.tasks import evaluate_model

__all__ = [
    "baseline_scores", "compare_run", "evaluate_model", "evaluate_run", "loss_and_perplexity", "run_baselines",
]
