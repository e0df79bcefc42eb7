"""A model on examples → task metrics and one prediction record per example. No files: `runner` is the edge
that loads models and writes a run's results.

Metrics are computed from the per-row predictions (`task_metrics`), so the same function scores any subset of
the rows, such as the test rows not leaked from train. In a job of several processes each process predicts its
share of the rows and every process gets all predictions back in row order (`tunesmith.distributed`), so the
metrics are those of one process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from tunesmith import distributed
from tunesmith.config.schema import EvaluateConfig
from tunesmith.config.vocabulary import ALWAYS_REPORTED, task_of
from tunesmith.data.example import Example
from tunesmith.errors import DataError
from tunesmith.evaluate.generation import generate
from tunesmith.evaluate.likelihood import loss_and_perplexity, loss_from_label_scores, predict_labels, score_labels
from tunesmith.evaluate.metrics import (
    classification_metrics,
    exact_match,
    generation_metrics,
    parse_number,
    regression_metrics,
)

# Detail that goes with a task's metrics whatever `evaluate.metrics` selects (the report draws on it).
T = TypeVar("T")
R = TypeVar("R")

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
    if task == "classification":
        if not labels:
            raise ValueError("classification needs the label set")
        predictions, extras, loss = _classify(model, tokenizer, examples, eval_config, labels)
    elif task in ("regression", "generation"):
        if task == "regression":
            for example in examples:
                regression_target(example)  # before generating: fail fast on bad rows
        prompts = [example.prompt_messages for example in examples]
        predictions = per_row_sharded(
            lambda share: generate(model, tokenizer, share, eval_config.max_new_tokens, eval_config.batch_size),
            prompts)
        extras, loss = [{} for _ in examples], None
    else:
        raise ValueError(f"unknown task {task!r}")
    metrics = select_metrics(task_metrics(task, examples, predictions, labels), task, eval_config)
    if loss is None:
        loss = loss_and_perplexity(model, tokenizer, examples, max_length, eval_config.batch_size)
    metrics.update({name: loss[name] for name in ALWAYS_REPORTED})
    records = [
        {"location": example.location, "prompt": last_user_message(example), "reference": example.reference,
         "prediction": prediction, "correct": correct_of(task, example, prediction), **extra}
        for example, prediction, extra in zip(examples, predictions, extras)
    ]
    return metrics, records


def per_row_sharded(compute: Callable[[list[T]], list[R]], items: Sequence[T]) -> list[R]:
    """``compute(items)`` (one result per item), each process computing its share; every process gets all."""
    return distributed.gather_shards(compute(distributed.shard(items)), len(items))


def task_metrics(task: str, examples: list[Example], predictions: list[str], labels: list[str] | None) -> dict:
    """The task's metrics of ``predictions`` (a predicted label, or the generated text) against ``examples``."""
    if task == "classification":
        return classification_metrics([truth_of(example) for example in examples], predictions, labels)
    if task == "regression":
        return regression_metrics([regression_target(example) for example in examples],
                                  [parse_number(prediction) for prediction in predictions])
    return generation_metrics([references_of(example) for example in examples], predictions)


def correct_of(task: str, example: Example, prediction: str) -> bool | None:
    if task == "classification":
        return prediction == truth_of(example)
    if task == "generation":
        return exact_match(references_of(example), prediction)
    return None


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


def truth_of(example: Example) -> str:
    """The label a classification row should get: its label, else its reference answer (a forced task)."""
    return example.label if example.label is not None else example.reference


def references_of(example: Example) -> list[str]:
    """Every acceptable answer: ``meta["references"]`` when the row has several (e.g. DialogSum), else one."""
    return list(example.meta.get("references") or [example.reference])


def match_label(text: str, labels: list[str]) -> str:
    """The label ``text`` names (stripped, case-insensitive), else ``text`` itself (scored as a wrong answer)."""
    wanted = text.strip().casefold()
    return next((label for label in labels if label.strip().casefold() == wanted), text.strip())


def regression_target(example: Example) -> float:
    """The row's number: its ``target``, else the number its reference answer writes (``evaluate.task`` forced)."""
    if example.target is not None:
        return example.target
    value = parse_number(example.reference)
    if value is None:
        raise DataError(
            example.location, None, f"regression needs a numeric answer, got {example.reference!r}",
            "use regression rows or another evaluate.task",
        )
    return value


def _classify(model, tokenizer, examples: list[Example], eval_config: EvaluateConfig, labels: list[str]):
    """Predicted labels, per-row extras, and the test loss when the label scores already give it (else None)."""
    prompts = [example.prompt_messages for example in examples]
    if eval_config.classification_mode == "likelihood":
        scores = per_row_sharded(
            lambda share: score_labels(model, tokenizer, share, labels, eval_config.batch_size), prompts)
        extras = [{"scores": dict(zip(labels, row))} for row in scores]
        return predict_labels(scores, labels), extras, loss_from_label_scores(tokenizer, examples, labels, scores)
    outputs = per_row_sharded(
        lambda share: generate(model, tokenizer, share, eval_config.max_new_tokens, eval_config.batch_size), prompts)
    return [match_label(output, labels) for output in outputs], [{} for _ in examples], None
