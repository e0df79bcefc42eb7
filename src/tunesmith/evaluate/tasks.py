"""A model on test examples → task metrics, the test loss, and one prediction record per example. No files:
`runner` is the edge that loads models and writes a run's results. The answers and their metrics are
`tunesmith.predict`'s, which training's validation metrics use too."""

from __future__ import annotations

from tunesmith.config.schema import EvaluateConfig
from tunesmith.config.vocabulary import ALWAYS_REPORTED, task_of
from tunesmith.data.example import Example
from tunesmith.evaluate.likelihood import loss_and_perplexity, loss_from_label_scores
from tunesmith.predict.answers import answer, correct_of, task_metrics

# Detail that goes with a task's metrics whatever `evaluate.metrics` selects (the report draws on it).
TASK_DETAILS = {
    "classification": ("per_class", "confusion_matrix"),
    "regression": ("parse_failures",),
    "generation": (),
}


def resolve_task(eval_config: EvaluateConfig, splits_format: str) -> str:
    """The task of `evaluate.task` for data of ``splits_format`` (see `tunesmith.config.vocabulary.task_of`)."""
    return task_of(eval_config.task, splits_format)


def evaluate_model(
    model, tokenizer, examples: list[Example], task: str, eval_config: EvaluateConfig, labels: list[str] | None,
    max_length: int,
) -> tuple[dict, list[dict]]:
    """Metrics of ``model`` on ``examples`` for ``task``, plus one prediction record per example.

    Every record has ``location``, ``prompt`` (the last user message), ``reference``, ``prediction`` and
    ``correct`` (``None`` for regression); likelihood-mode classification adds ``scores`` ({label: logprob}).
    """
    answers = answer(model, tokenizer, examples, task, eval_config, labels)
    metrics = select_metrics(task_metrics(task, examples, answers.predictions, labels), task, eval_config)
    loss = None
    extras = [{} for _ in examples]
    if answers.label_scores is not None:
        extras = [{"scores": dict(zip(labels, row))} for row in answers.label_scores]
        loss = loss_from_label_scores(tokenizer, examples, labels, answers.label_scores)  # no second pass
    if loss is None:
        loss = loss_and_perplexity(model, tokenizer, examples, max_length, eval_config.batch_size)
    metrics.update({name: loss[name] for name in ALWAYS_REPORTED})
    records = [
        {"location": example.location, "prompt": last_user_message(example), "reference": example.reference,
         "prediction": prediction, "correct": correct_of(task, example, prediction), **extra}
        for example, prediction, extra in zip(examples, answers.predictions, extras)
    ]
    return metrics, records


def select_metrics(metrics: dict, task: str, eval_config: EvaluateConfig) -> dict:
    """Keep the metrics named in ``evaluate.metrics`` (all when ``None``) and the task's always-kept details."""
    eval_config.check_metrics(task)
    if eval_config.metrics is None:
        return dict(metrics)
    keep = set(eval_config.metrics) | set(TASK_DETAILS[task])
    return {name: value for name, value in metrics.items() if name in keep}


def last_user_message(example: Example) -> str:
    prompt = example.prompt_messages
    users = [message["content"] for message in prompt if message["role"] == "user"]
    return users[-1] if users else (prompt[-1]["content"] if prompt else "")
