"""A model on test examples → task metrics, the test loss, and one prediction record per example. No files:
`runner` is the edge that loads models and writes a run's results. The answers and their metrics are
`tunesmith.predict`'s, which training's validation metrics use too."""

from __future__ import annotations

from tunesmith.config.schema import EvaluateConfig
from tunesmith.config.vocabulary import ALWAYS_REPORTED
from tunesmith.data.example import Example
from tunesmith.data.task import Task
from tunesmith.evaluate.likelihood import loss_and_perplexity, loss_from_label_scores
from tunesmith.evaluate.tool_calls import has_tool_calls, tool_call_metrics
from tunesmith.predict.answers import answer, correct_of, task_metrics
from tunesmith.predict.calibration import sequence_confidence

# Detail that goes with a task's metrics whatever `evaluate.metrics` selects (the report draws on it).
TASK_DETAILS = {
    "classification": ("per_class", "confusion_matrix"),
    "regression": ("parse_failures",),
    "generation": (),
}


def evaluate_model(
    model, tokenizer, examples: list[Example], task: Task, eval_config: EvaluateConfig, max_length: int,
    confidence: bool = False,
) -> tuple[dict, list[dict]]:
    """Metrics of ``model`` on ``examples`` for ``task``, plus one prediction record per example.

    Every record has ``location``, ``prompt`` (the last user message), ``reference``, ``prediction`` and
    ``correct`` (``None`` for regression); likelihood-mode classification adds ``scores`` ({label: logprob}), and
    generation adds ``confidence`` (the answer's sequence confidence) when ``confidence`` asks for it.
    """
    answers = answer(model, tokenizer, examples, task, eval_config, token_logprobs=confidence)
    metrics = select_metrics(task_metrics(task, examples, answers.predictions), task)
    if has_tool_calls(examples):  # tool-calling rows: their calls are scored too (`evaluate.tool_calls`)
        metrics.update(tool_call_metrics(examples, answers.predictions))
    loss = None
    extras = [{} for _ in examples]
    if answers.label_scores is not None:
        extras = [{"scores": dict(zip(task.labels, row))} for row in answers.label_scores]
        loss = loss_from_label_scores(tokenizer, examples, task.labels, answers.label_scores)  # no second pass
    if answers.token_logprobs is not None:
        extras = [{"confidence": sequence_confidence(logprobs)} for logprobs in answers.token_logprobs]
    if loss is None:
        loss = loss_and_perplexity(model, tokenizer, examples, max_length, eval_config.batch_size)
    metrics.update({name: loss[name] for name in ALWAYS_REPORTED})
    records = [
        {"location": example.location, "prompt": last_user_message(example), "reference": example.reference,
         "prediction": prediction, "correct": correct_of(task, example, prediction), **extra}
        for example, prediction, extra in zip(examples, answers.predictions, extras)
    ]
    return metrics, records


def select_metrics(metrics: dict, task: Task) -> dict:
    """Keep the metrics the task reports (`Task.metrics`: `evaluate.metrics`, else all) and its always-kept
    details."""
    keep = {*task.metrics, *TASK_DETAILS[task.name]}
    return {name: value for name, value in metrics.items() if name in keep}


def last_user_message(example: Example) -> str:
    prompt = example.prompt_messages
    users = [message["content"] for message in prompt if message["role"] == "user"]
    return users[-1] if users else (prompt[-1]["content"] if prompt else "")
