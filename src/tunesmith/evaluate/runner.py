"""Evaluate a model on examples, a run's tuned model against its base model, and print the comparison.

`evaluate_model` is the pure-ish core (a model and examples in, metrics and per-row predictions out);
`evaluate_run` is the edge that loads models and writes ``eval.json`` and ``predictions.jsonl``.
"""

from __future__ import annotations

import gc
import json
import time
from pathlib import Path

import torch
from rich.console import Console

from tunesmith.config.schema import EvaluateConfig, RunConfig
from tunesmith.data.stream import load_run_splits
from tunesmith.data.example import Example
from tunesmith.errors import ConfigError, DataError
from tunesmith.evaluate.generation import generate
from tunesmith.evaluate.likelihood import (
    loss_and_perplexity,
    loss_from_label_scores,
    predict_labels,
    score_labels,
)
from tunesmith.evaluate.metrics import (
    CLASSIFICATION_METRICS,
    GENERATION_METRICS,
    REGRESSION_METRICS,
    classification_metrics,
    exact_match,
    generation_metrics,
    parse_number,
    regression_metrics,
)
from tunesmith.models import load_base_model, load_tuned_model
from tunesmith.run_dir import RunDir

TASK_METRICS = {
    "classification": CLASSIFICATION_METRICS,
    "regression": REGRESSION_METRICS,
    "generation": GENERATION_METRICS,
}
ALWAYS_REPORTED = ("loss", "perplexity")
# Detail that goes with a task's metrics whatever `evaluate.metrics` selects (the report draws on it).
TASK_DETAILS = {
    "classification": ("per_class", "confusion_matrix"),
    "regression": ("parse_failures",),
    "generation": (),
}

_console = Console(stderr=True)


def resolve_task(eval_config: EvaluateConfig, splits_format: str) -> str:
    """The configured task, or for `auto` the data format's own task (classification/regression) or generation."""
    if eval_config.task != "auto":
        return eval_config.task
    return splits_format if splits_format in ("classification", "regression") else "generation"


def evaluate_model(
    model,
    tokenizer,
    examples: list[Example],
    task: str,
    eval_config: EvaluateConfig,
    labels: list[str] | None,
    max_length: int,
) -> tuple[dict, list[dict]]:
    """Metrics of ``model`` on ``examples`` for ``task``, plus one prediction record per example.

    Every record has ``source``, ``prompt`` (the last user message), ``reference``, ``prediction`` and
    ``correct`` (``None`` for regression); likelihood-mode classification adds ``scores`` ({label: logprob}).
    """
    if task == "classification":
        if not labels:
            raise ValueError("classification needs the label set")
        metrics, predictions, loss = _classify(model, tokenizer, examples, eval_config, labels, max_length)
    elif task == "regression":
        metrics, predictions = _regress(model, tokenizer, examples, eval_config)
        loss = None
    elif task == "generation":
        metrics, predictions = _generate_text(model, tokenizer, examples, eval_config)
        loss = None
    else:
        raise ValueError(f"unknown task {task!r}")
    metrics = select_metrics(metrics, task, eval_config.metrics)
    if loss is None:
        loss = loss_and_perplexity(model, tokenizer, examples, max_length, eval_config.batch_size)
    metrics.update({name: loss[name] for name in ALWAYS_REPORTED})
    records = [
        {"source": example.source, "prompt": last_user_message(example), "reference": example.reference, **row}
        for example, row in zip(examples, predictions)
    ]
    return metrics, records


def select_metrics(metrics: dict, task: str, wanted: list[str] | None) -> dict:
    """Keep the metrics named in ``evaluate.metrics`` (all when ``None``) and the task's always-kept details."""
    known = TASK_METRICS[task]
    if wanted is None:
        return dict(metrics)
    unknown = [name for name in wanted if name not in known and name not in ALWAYS_REPORTED]
    if unknown:
        raise ConfigError(
            "evaluate.metrics", f"{', '.join(map(repr, unknown))} is not a {task} metric",
            f"choose from {', '.join(known + ALWAYS_REPORTED)}",
        )
    keep = set(wanted) | set(TASK_DETAILS[task])
    return {name: value for name, value in metrics.items() if name in keep}


def last_user_message(example: Example) -> str:
    prompt = example.prompt_messages
    users = [message["content"] for message in prompt if message["role"] == "user"]
    return users[-1] if users else (prompt[-1]["content"] if prompt else "")


def references_of(example: Example) -> list[str]:
    """Every acceptable answer: ``meta["references"]`` when the row has several (e.g. DialogSum), else one."""
    return list(example.meta.get("references") or [example.reference])


def match_label(text: str, labels: list[str]) -> str:
    """The label ``text`` names (stripped, case-insensitive), else ``text`` itself (scored as a wrong answer)."""
    wanted = text.strip().casefold()
    return next((label for label in labels if label.strip().casefold() == wanted), text.strip())


def _classify(model, tokenizer, examples, eval_config: EvaluateConfig, labels: list[str], max_length: int):
    """Metrics, per-row predictions, and the test loss when the label scores already give it (else ``None``)."""
    prompts = [example.prompt_messages for example in examples]
    truth = [example.label if example.label is not None else example.reference for example in examples]
    if eval_config.classification_mode == "likelihood":
        scores = score_labels(model, tokenizer, prompts, labels, eval_config.batch_size)
        predicted = predict_labels(scores, labels)
        extras = [{"scores": dict(zip(labels, row))} for row in scores]
        loss = loss_from_label_scores(tokenizer, examples, labels, scores)
    else:
        outputs = generate(model, tokenizer, prompts, eval_config.max_new_tokens, eval_config.batch_size)
        predicted = [match_label(output, labels) for output in outputs]
        extras = [{} for _ in examples]
        loss = None
    predictions = [
        {"prediction": pred, "correct": pred == true, **extra} for pred, true, extra in zip(predicted, truth, extras)
    ]
    return classification_metrics(truth, predicted, labels), predictions, loss


def _regress(model, tokenizer, examples, eval_config: EvaluateConfig):
    targets = [regression_target(example) for example in examples]  # before generating: fail fast on bad rows
    prompts = [example.prompt_messages for example in examples]
    outputs = generate(model, tokenizer, prompts, eval_config.max_new_tokens, eval_config.batch_size)
    predictions = [{"prediction": output, "correct": None} for output in outputs]
    return regression_metrics(targets, [parse_number(output) for output in outputs]), predictions


def regression_target(example: Example) -> float:
    """The row's number: its ``target``, else the number its reference answer writes (``evaluate.task`` forced)."""
    if example.target is not None:
        return example.target
    value = parse_number(example.reference)
    if value is None:
        raise DataError(
            example.source, None, f"regression needs a numeric answer, got {example.reference!r}",
            "use regression rows or another evaluate.task",
        )
    return value


def _generate_text(model, tokenizer, examples, eval_config: EvaluateConfig):
    prompts = [example.prompt_messages for example in examples]
    outputs = generate(model, tokenizer, prompts, eval_config.max_new_tokens, eval_config.batch_size)
    references = [references_of(example) for example in examples]
    predictions = [
        {"prediction": output, "correct": exact_match(refs, output)} for refs, output in zip(references, outputs)
    ]
    return generation_metrics(references, outputs), predictions


def evaluate_run(run_dir, include_base: bool | None = None) -> dict:
    """Evaluate a run's tuned model (and its base model) on the test split; write eval.json and predictions.jsonl.

    ``include_base`` defaults to ``evaluate.compare_base`` of the run's config. Returns the eval.json content.
    """
    run = RunDir(run_dir)
    config = run.config()
    run.require(run.best, "train")  # fail before spending minutes on the base model
    include_base = config.evaluate.compare_base if include_base is None else include_base
    splits = load_run_splits(config.data)
    if not splits.test:
        raise DataError(
            splits.files.get("test", "data"), None, "the test split has no rows",
            "give data.test or set data.split.test above 0",
        )
    task = resolve_task(config.evaluate, splits.format)
    labels = _task_labels(task, splits.labels, config) if task == "classification" else None

    base_metrics = base_rows = None
    if include_base:
        model, tokenizer = load_base_model(config.model)
        base_metrics, base_rows = _timed_evaluation("base", model, tokenizer, splits.test, task, labels, config)
        del model
        _free_memory()  # the tuned model (on top of its own copy of the base) is loaded next
    model, tokenizer = load_tuned_model(run.root, merge=True)
    tuned_metrics, tuned_rows = _timed_evaluation("tuned", model, tokenizer, splits.test, task, labels, config)
    del model
    _free_memory()

    result = {
        "task": task,
        "labels": labels,
        "num_examples": len(splits.test),
        "base": base_metrics,
        "tuned": tuned_metrics,
        "delta": metric_deltas(base_metrics, tuned_metrics),
    }
    run.eval_json.write_text(json.dumps(result, indent=2), encoding="utf-8")
    _write_jsonl(run.predictions, merge_predictions(base_rows, tuned_rows))
    return result


def metric_deltas(base: dict | None, tuned: dict) -> dict:
    """``tuned - base`` for every scalar metric both models have a number for."""
    if base is None:
        return {}
    return {
        name: value - base[name]
        for name, value in tuned.items()
        if _is_number(value) and _is_number(base.get(name))
    }


def merge_predictions(base_rows: list[dict] | None, tuned_rows: list[dict]) -> list[dict]:
    """One line per test row with both models' predictions side by side (base fields ``None`` without base)."""
    merged = []
    for index, tuned in enumerate(tuned_rows):
        base = base_rows[index] if base_rows is not None else {}
        line = {
            "source": tuned["source"], "prompt": tuned["prompt"], "reference": tuned["reference"],
            "base_prediction": base.get("prediction"), "tuned_prediction": tuned["prediction"],
            "base_correct": base.get("correct"), "tuned_correct": tuned["correct"],
        }
        if "scores" in tuned:
            line["base_scores"] = base.get("scores")
            line["tuned_scores"] = tuned["scores"]
        merged.append(line)
    return merged


def compare_run(run_dir) -> str:
    """The base-vs-tuned metric table of a run, evaluating it first when eval.json lacks the base model."""
    run = RunDir(run_dir)
    result = json.loads(run.eval_json.read_text(encoding="utf-8")) if run.eval_json.is_file() else None
    if result is None or result.get("base") is None:
        result = evaluate_run(run.root, include_base=True)
    return format_comparison(result)


def format_comparison(result: dict) -> str:
    """A plain-text ``metric | base | tuned | delta`` table of the scalar metrics in an eval.json dict."""
    base, tuned = result.get("base") or {}, result.get("tuned") or {}
    names = [name for name, value in tuned.items() if value is None or _is_number(value)]
    rows = [("metric", "base", "tuned", "delta")]
    for name in names:
        delta = result.get("delta", {}).get(name)
        rows.append((name, _cell(base.get(name)), _cell(tuned.get(name)), _cell(delta, signed=True)))
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = [
        " | ".join(cell.ljust(width) if column == 0 else cell.rjust(width) for column, (cell, width) in
                   enumerate(zip(row, widths)))
        for row in rows
    ]
    lines.insert(1, "-+-".join("-" * width for width in widths))
    title = f"{result.get('task')} on {result.get('num_examples')} test rows"
    return "\n".join([title, *lines])


def _cell(value, signed: bool = False) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:+d}" if signed else str(value)
    if signed and round(value, 4) == 0:
        value = 0.0  # a float-noise change of -1e-7 would otherwise print as "-0.0000"
    return f"{value:+.4f}" if signed else f"{value:.4f}"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _task_labels(task: str, found: list[str] | None, config: RunConfig) -> list[str]:
    labels = found or config.data.label_names
    if not labels:
        raise ConfigError(
            "evaluate.task", f"{task} needs labelled rows, but the data format has no label set",
            "use classification rows (text + label) or set data.label_names",
        )
    return list(labels)


def _timed_evaluation(which: str, model, tokenizer, examples, task, labels, config: RunConfig):
    _console.print(f"evaluating the {which} model on {len(examples)} test rows ({task})")
    started = time.perf_counter()
    metrics, rows = evaluate_model(
        model, tokenizer, examples, task, config.evaluate, labels, config.data.max_length
    )
    _console.print(f"  {which} model done in {time.perf_counter() - started:.1f}s")
    return metrics, rows


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
