"""A model's answers to examples, as the task asks for them, and the task metrics of those answers.

Classification picks a label (by label likelihood, or by generating and matching a label name), regression
generates a number, generation generates text. Metrics are computed from the per-row answers (`task_metrics`), so
the same function scores any subset of the rows, such as the test rows not leaked from train. In a job of
several processes each process answers its share of the rows and every process gets all answers back in row
order (`tunesmith.distributed`), so every process computes the metrics of one process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from tunesmith import distributed
from tunesmith.config.schema import EvaluateConfig
from tunesmith.data.example import Example
from tunesmith.data.task import Task
from tunesmith.errors import DataError
from tunesmith.predict.generation import generate, generate_with_logprobs
from tunesmith.predict.labels import predict_labels, score_labels
from tunesmith.predict.metrics import (
    classification_metrics,
    exact_match,
    generation_metrics,
    parse_number,
    regression_metrics,
)

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Answers:
    predictions: list[str]
    """One per example: the predicted label, or the generated text."""
    label_scores: list[list[float]] | None = None
    """Likelihood-mode classification: each example's log-probability of each label (in label order)."""
    token_logprobs: list[list[float]] | None = None
    """Generation asked for them (``token_logprobs``): the log-probability of each token of each answer."""


def answer(model, tokenizer, examples: Sequence[Example], task: Task, eval_config: EvaluateConfig,
           token_logprobs: bool = False) -> Answers:
    """``model``'s answer to each of ``examples`` for ``task``, with the evaluation settings of ``eval_config``
    (classification mode, generation budget, batch size); a generation task's answers come with their token
    log-probabilities when ``token_logprobs`` asks for them."""
    prompts = [example.prompt_messages for example in examples]
    labels = task.labels
    if task.name == "classification":
        if not labels:
            raise ValueError("classification needs the label set")
        if eval_config.classification_mode == "likelihood":
            scores = per_row_sharded(
                lambda share: score_labels(model, tokenizer, share, labels, eval_config.batch_size), prompts)
            return Answers(predict_labels(scores, labels), scores)
        return Answers([match_label(output, labels) for output in _generated(model, tokenizer, prompts, eval_config)])
    if task.name == "regression":
        for example in examples:
            regression_target(example)  # before generating: fail fast on bad rows
    elif task.name != "generation":
        raise ValueError(f"unknown task {task.name!r}")
    if token_logprobs and task.name == "generation":
        scored = per_row_sharded(lambda share: generate_with_logprobs(
            model, tokenizer, share, eval_config.max_new_tokens, eval_config.batch_size), prompts)
        return Answers([text for text, _ in scored], token_logprobs=[logprobs for _, logprobs in scored])
    return Answers(_generated(model, tokenizer, prompts, eval_config))


def _generated(model, tokenizer, prompts: list, eval_config: EvaluateConfig) -> list[str]:
    return per_row_sharded(
        lambda share: generate(model, tokenizer, share, eval_config.max_new_tokens, eval_config.batch_size), prompts)


def per_row_sharded(compute: Callable[[list[T]], list[R]], items: Sequence[T]) -> list[R]:
    """``compute(items)`` (one result per item), each process computing its share; every process gets all."""
    return distributed.gather_shards(compute(distributed.shard(items)), len(items))


def task_metrics(task: Task, examples: Sequence[Example], predictions: list[str]) -> dict:
    """The task's metrics of ``predictions`` (a predicted label, or the generated text) against ``examples``: all of
    them, whatever `Task.metrics` selects (evaluation selects; training's validation reads the ones it needs)."""
    if task.name == "classification":
        return classification_metrics([truth_of(example) for example in examples], predictions, task.labels)
    if task.name == "regression":
        return regression_metrics([regression_target(example) for example in examples],
                                  [parse_number(prediction) for prediction in predictions])
    return generation_metrics([references_of(example) for example in examples], predictions)


def correct_of(task: Task, example: Example, prediction: str) -> bool | None:
    """Whether ``prediction`` answers ``example`` right: the label (classification), an exact match of a reference
    (generation); None for regression, which has no right or wrong."""
    if task.name == "classification":
        return prediction == truth_of(example)
    if task.name == "generation":
        return exact_match(references_of(example), prediction)
    return None


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
