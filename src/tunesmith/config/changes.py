"""What may change in a run's config after the run has started, and how a change is named.

A run folder's `config.yaml` is the truth about what a run is. Two rules follow:

- **Resume** continues the run exactly as it was configured. A setting that only says how long to go on or
  what to record along the way (`RESUMABLE`) may change: it is applied and written to the run's `config.yaml`.
  Any other difference is an error naming each changed key with its old and new value.
- **A command on a run folder** (`eval`, `compare`, `export`, `report`, `chat`, `generate`, `review create`) may
  change the settings of the command at hand (`RUN_FOLDER_SETTINGS`: evaluation and generation, review, and the
  attention kernel of the machine it runs on), never those that define
  the trained model or its data: an export's model card must describe the model it ships.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tunesmith.config.schema import RunConfig
from tunesmith.errors import ConfigError

KERNELS = ("model.attention", "train.liger")
"""Which kernels compute the model (`tunesmith.models.kernels`): the same function up to rounding, and a property
of the machine rather than of the run, so a run trained on a GPU can resume, be evaluated and chat elsewhere."""
RESUMABLE = (
    "train.max_steps", "train.epochs", "train.eval_every", "train.save_every", "train.keep_checkpoints",
    "train.early_stopping_patience", "train.threads", "train.on_nonfinite", "train.compile",
    "train.val_metrics", "train.val_metrics_rows",  # measured along the way; they do not change the training
    "train.gradient_checkpointing", "model.offline", "data.num_proc", "data.cache", "data.check.", "evaluate.",
    "output.", "distributed.", *KERNELS,
    "monitor.",  # how the served model is judged, not what it is
    "review.",  # how people judge the model's answers, not what the model is
    "sweep.",  # the search that made the run, not the run
    # The global batch (batch_size x processes x grad_accumulation) must stay the same, which training checks:
    # a run started on 2 processes with batch_size 4 resumes on 1 with grad_accumulation 2 (or batch_size 8).
    "train.batch_size", "train.grad_accumulation",
)
"""Keys (or prefixes ending in a dot) a resume may change."""
RUN_FOLDER_SETTINGS = ("evaluate.", "model.attention", "review.")
"""Keys (or prefixes) `--set` may change on a run folder."""


def flat(config: RunConfig) -> dict[str, Any]:
    """Every setting as ``{dotted key: value}``."""
    def walk(prefix: str, value: Any) -> dict[str, Any]:
        if isinstance(value, dict):
            return {key: item for name, child in value.items() for key, item in walk(f"{prefix}{name}.", child).items()}
        return {prefix[:-1]: value}

    return walk("", config.model_dump(mode="json"))


def changes(old: RunConfig, new: RunConfig) -> list[tuple[str, Any, Any]]:
    """``(key, old value, new value)`` of every setting that differs, in config order."""
    before, after = flat(old), flat(new)
    return [(key, before.get(key), after.get(key)) for key in dict.fromkeys([*before, *after])
            if before.get(key) != after.get(key)]


def describe(found: list[tuple[str, Any, Any]]) -> str:
    return "; ".join(f"{key} {json.dumps(old)} → {json.dumps(new)}" for key, old, new in found)


def _matches(key: str, allowed: tuple[str, ...]) -> bool:
    return any(key == rule or (rule.endswith(".") and key.startswith(rule)) for rule in allowed)


def resumed_config(saved: RunConfig, requested: RunConfig, run_name: str) -> tuple[RunConfig, list]:
    """The config a resume runs with, and the resumable changes it applies (see the module docstring)."""
    found = changes(saved, requested)
    fixed = [change for change in found if not _matches(change[0], RESUMABLE)]
    if fixed:
        raise ConfigError(
            "", f"resuming {run_name} with changed settings: {describe(fixed)}",
            "a resume continues the run as it was configured (its config.yaml); only how long it trains and what it "
            "records may change. Resume with the run's settings, or start a new run without --resume",
        )
    return requested, found


def run_folder_config(saved: RunConfig, requested: RunConfig) -> RunConfig:
    """``requested`` when it changes only settings of the command at hand, else a `ConfigError` naming the key."""
    fixed = [change for change in changes(saved, requested) if not _matches(change[0], RUN_FOLDER_SETTINGS)]
    if fixed:
        key, old, _ = fixed[0]
        raise ConfigError(key, f"is fixed in a trained run (it was trained with {json.dumps(old)})",
                          "on a run folder, --set changes evaluate.*, review.* and model.attention only; start a new "
                          "run to change the rest")
    return requested


def fingerprint(config: RunConfig) -> str:
    """sha256 of every setting that defines a run (what a resume may not change): two configs with the same
    fingerprint train the same model."""
    fixed = {key: value for key, value in flat(config).items() if not _matches(key, RESUMABLE)}
    return hashlib.sha256(json.dumps(fixed, sort_keys=True).encode()).hexdigest()
