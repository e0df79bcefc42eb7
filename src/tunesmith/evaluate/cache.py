"""Base-model evaluations kept on disk (`evaluate.cache_base`). The base model does not change between runs that
score it on the same test rows with the same settings, so a second run reuses its metrics and per-row
predictions instead of evaluating it again (half of a run's evaluation time).

An entry is `cache_dir()/eval/<key>/` holding `entry.json` (the metrics, when they were computed, and what the
key was made of, readable) and `predictions.jsonl` (one record per test row, as `evaluate_model` returns them:
eval.json, predictions.jsonl and the unleaked scores are all made from these). The key is a sha256 over
everything that decides the scores (`key_ingredients`): the base model's weights and config files
(`base_fingerprint`: for a run with `model.init_from`, that run's best weights too, so the plain base's entry is never
taken for the SFT model's), the dtype and device type it runs in, the tokenizer and chat template, the test rows with
every field in order (so also the instruction and system prompt, which are in their messages), the task and
labels, the `evaluate.*` settings that change scores, `data.max_length` (the loss truncates at it), the torch and
transformers versions, and `EVAL_CODE_VERSION`. An entry is written whole or not at all (`staged_folder`); one that
cannot be read back whole is ignored with a warning, evaluated again and replaced.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime
from importlib.metadata import version
from pathlib import Path

import torch

from tunesmith import distributed
from tunesmith.atomic import recover_folder, staged_folder
from tunesmith.config.schema import RunConfig
from tunesmith.data.cache import examples_fingerprint
from tunesmith.data.example import Example
from tunesmith.data.task import Task
from tunesmith.errors import RunError
from tunesmith.json_files import read_json, read_jsonl, write_json, write_jsonl
from tunesmith.models import cache_dir, pick_dtype
from tunesmith.models.fingerprint import tokenizer_fingerprint
from tunesmith.models.init_from import base_fingerprint

log = logging.getLogger("tunesmith")

EVAL_CODE_VERSION = 1
"""Raise whenever scoring changes (how a label is scored, a reply generated, a metric or the loss computed, or what
a prediction record holds): entries made by the old code then stop matching."""

SCORING_SETTINGS = ("classification_mode", "max_new_tokens", "batch_size", "metrics")
"""The `evaluate.*` settings that change the base model's results. `batch_size` is one: rows padded to another
length change floating-point sums slightly, which can flip a greedy token. (`task` enters the key resolved.)"""

ENTRY_FILE = "entry.json"
PREDICTIONS_FILE = "predictions.jsonl"
RECORD_FIELDS = ("location", "prompt", "reference", "prediction", "correct")


@dataclass(frozen=True)
class CachedEvaluation:
    """A base-model evaluation as kept in the cache: what `evaluate_model` returned, its key and when it was
    computed (local time, ISO 8601)."""

    key: str
    computed_at: str
    metrics: dict
    rows: list[dict]

    def record(self) -> dict:
        """What eval.json says of the entry (``base_cache``)."""
        return {"key": self.key, "computed_at": self.computed_at}


def eval_cache_root() -> Path:
    return cache_dir() / "eval"


def key_ingredients(config: RunConfig, tokenizer, examples: list[Example], task: Task) -> dict:
    """Everything that decides the base model's evaluation on ``examples`` (see the module docstring), as JSON."""
    device = distributed.device()
    return {
        "evaluation_code": EVAL_CODE_VERSION,
        "model": base_fingerprint(config.model),  # with model.init_from, that run's weights too
        "dtype": str(pick_dtype(config.model.dtype, device)),
        "device": device.type,
        "tokenizer": tokenizer_fingerprint(tokenizer),
        "test_rows": examples_fingerprint(examples),
        "num_rows": len(examples),
        "task": task.name,
        "labels": task.labels,
        "evaluate": config.evaluate.model_dump(mode="json", include=set(SCORING_SETTINGS)),
        "max_length": config.data.max_length,
        "libraries": {"torch": torch.__version__, "transformers": version("transformers")},
    }


def evaluation_key(ingredients: dict) -> str:
    return hashlib.sha256(json.dumps(ingredients, sort_keys=True).encode()).hexdigest()[:32]


def load_evaluation(key: str, examples: list[Example]) -> CachedEvaluation | None:
    """The entry named ``key``, or None when there is none or it is damaged (then with a warning: the caller
    evaluates again and `store_evaluation` replaces it)."""
    folder = eval_cache_root() / key
    recover_folder(folder)
    if not folder.exists():
        return None
    try:
        entry = read_json(folder / ENTRY_FILE)
        rows = read_jsonl(folder / PREDICTIONS_FILE)
        damage = _damage(entry, rows, key, examples)
    except (RunError, OSError, UnicodeDecodeError) as exc:
        damage = str(exc)
    if damage:
        log.warning("ignoring the damaged cached base-model evaluation %s (%s); evaluating the base model again",
                    folder, damage)
        return None
    return CachedEvaluation(key=key, computed_at=entry["computed_at"], metrics=entry["metrics"], rows=rows)


def store_evaluation(key: str, ingredients: dict, metrics: dict, rows: list[dict]) -> CachedEvaluation | None:
    """Keep an evaluation under ``key``, replacing whatever was there; returns it as `load_evaluation` would, or
    None with a warning when the cache cannot be written (a full disk, a read-only cache): the results are good,
    and losing the run over a cache would waste them."""
    computed_at = datetime.now().astimezone().isoformat(timespec="seconds")
    try:
        with staged_folder(eval_cache_root() / key) as staging:
            write_json(staging / ENTRY_FILE, {"key": key, "computed_at": computed_at, "ingredients": ingredients,
                                              "metrics": metrics})
            write_jsonl(staging / PREDICTIONS_FILE, rows)
    except RunError as exc:
        log.warning("the base model's evaluation is not kept in the cache: %s", exc)
        return None
    return CachedEvaluation(key=key, computed_at=computed_at, metrics=metrics, rows=rows)


def _damage(entry, rows: list, key: str, examples: list[Example]) -> str | None:
    """What is wrong with an entry's parsed files, or None when it is whole and made for these rows."""
    if not isinstance(entry, dict) or entry.get("key") != key:
        return f"{ENTRY_FILE} is missing or not this entry's"
    if not isinstance(entry.get("metrics"), dict) or not isinstance(entry.get("computed_at"), str):
        return f"{ENTRY_FILE} lacks the metrics or the time they were computed"
    if len(rows) != len(examples):
        return f"{PREDICTIONS_FILE} has {len(rows)} rows for {len(examples)} test rows"
    for row, example in zip(rows, examples):
        if not isinstance(row, dict) or any(field not in row for field in RECORD_FIELDS):
            return f"a row of {PREDICTIONS_FILE} lacks one of {', '.join(RECORD_FIELDS)}"
        if row["location"] != example.location:
            return f"{PREDICTIONS_FILE} has {row['location']} where the test rows have {example.location}"
    return None
