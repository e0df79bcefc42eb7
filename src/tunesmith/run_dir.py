"""The layout of a run folder, and the lock that makes one process at a time its writer.

Every stage reads and writes its files through these names. A stage that writes holds `RunDir.lock()`: an OS
file lock (`flock`) on ``.lock``, which the kernel releases when the process ends, so a killed run never leaves
a stale lock. The lock is reentrant within a process (the pipeline holds it around stages that take it too).
Taking it first finishes or cleans up what a killed writer left (`tunesmith.atomic.recover_folders`,
`remove_stale_staging`): with the lock held, no other writer can be in the middle of them.

In a job of several processes rank 0 is the writer and alone holds the lock (and repairs); for the others
`lock` does nothing, and code that all processes run waits at a `distributed.barrier` after taking it, before
they read what the repair may change.
"""

from __future__ import annotations

import fcntl
import functools
import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import yaml

from tunesmith import distributed
from tunesmith.atomic import recover_folder, recover_folders, remove_stale_staging
from tunesmith.config import RunConfig, validate_config
from tunesmith.errors import ConfigError, RunError

log = logging.getLogger("tunesmith")

T = TypeVar("T")
_HELD: dict[str, list] = {}
"""Locks this process holds: resolved run folder → [file descriptor, depth]."""


@dataclass(frozen=True)
class RunDir:
    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    config_path = property(lambda self: self.root / "config.yaml")
    """The resolved config of the run (every default filled in)."""
    origin = property(lambda self: self.root / "origin.json")
    """Where the run's config came from (its resolved path) and the fingerprint of its settings: what
    `--resume CONFIG` matches runs by."""
    lock_file = property(lambda self: self.root / ".lock")
    metrics = property(lambda self: self.root / "metrics.jsonl")
    """One JSON object per line: training steps (`step`, `loss`, `lr`, `tokens_per_s`, ...) and validations
    (`step`, `val_loss`)."""
    tensorboard = property(lambda self: self.root / "tensorboard")
    checkpoints = property(lambda self: self.root / "checkpoints")
    best = property(lambda self: self.root / "checkpoints" / "best")
    """Weights with the lowest validation loss: a PEFT adapter folder (lora, dora, qlora) or a full HF model folder
    (full)."""
    train_summary = property(lambda self: self.root / "train_summary.json")
    data_summary = property(lambda self: self.root / "data_summary.json")
    eval_json = property(lambda self: self.root / "eval.json")
    predictions = property(lambda self: self.root / "predictions.jsonl")
    adapter = property(lambda self: self.root / "adapter")
    merged = property(lambda self: self.root / "merged")
    gguf = property(lambda self: self.root / "gguf")
    """`tunesmith export --format gguf`: ``<run-name>-<quant>.gguf`` files and an Ollama ``Modelfile``."""
    timings = property(lambda self: self.root / "timings.json")
    rag = property(lambda self: self.root / "rag")
    """Rows with retrieved context and `summary.json` of what retrieval did, when `rag` changes a run's rows."""
    """Seconds each pipeline stage took, and the total."""
    failure = property(lambda self: self.root / "failure.json")
    """Written when a stage of the pipeline ended with an error (the stage, the error, when); removed when the run
    is resumed. A killed process leaves none: its run reads as stopped, not failed."""
    report_md = property(lambda self: self.root / "report.md")
    report_html = property(lambda self: self.root / "report.html")

    def config(self) -> RunConfig:
        """The run's resolved `RunConfig`."""
        if not self.config_path.is_file():
            raise RunError(f"{self.root} is not a tunesmith run folder (no config.yaml)")
        try:
            raw = yaml.safe_load(self.config_path.read_text(encoding="utf-8"))
            if not isinstance(raw, dict):
                raise ValueError("it does not hold a mapping of sections")
            return validate_config(raw)
        except (yaml.YAMLError, UnicodeDecodeError, ValueError, ConfigError) as exc:
            raise RunError(f"{self.config_path} is damaged: {' '.join(str(exc).split())}",
                           "the run's settings are lost; start a new run") from None

    def best_weights(self) -> Path:
        """`best`, after finishing an interrupted replacement (see `tunesmith.atomic`); an error if training
        never produced one (in a job of several processes rank 0 finishes the replacement)."""
        if distributed.is_main():
            recover_folder(self.best)
        return self.require(self.best, "train")

    def require(self, path: Path, produced_by: str) -> Path:
        if not path.exists():
            raise RunError(f"{path} does not exist", f"run `tunesmith {produced_by}` first")
        return path

    @contextmanager
    def lock(self) -> Iterator[RunDir]:
        """Hold the run folder's lock (see the module docstring); a `RunError` naming the holder's pid when
        another process holds it."""
        key = str(self.root.resolve())
        if key in _HELD:
            _HELD[key][1] += 1
            try:
                yield self
            finally:
                _HELD[key][1] -= 1
            return
        if not distributed.is_main():
            yield self
            return
        if not self.root.is_dir():
            raise RunError(f"{self.root} is not a folder", "give the path of a run folder")
        descriptor = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(descriptor)
            os.close(descriptor)
            raise RunError(f"run folder {self.root} is in use by another tunesmith process ({holder})",
                           "wait for it to end, or stop it; a process that dies releases the folder") from None
        os.ftruncate(descriptor, 0)
        os.write(descriptor, json.dumps({"pid": os.getpid(), "command": " ".join(sys.argv)}).encode())
        _HELD[key] = [descriptor, 1]
        try:
            self._repair()
            yield self
        finally:
            _HELD.pop(key)
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            os.close(descriptor)

    def _repair(self) -> None:
        for folder in (self.root, self.checkpoints):
            if folder.is_dir():
                recover_folders(folder)
                for stale in remove_stale_staging(folder):
                    log.info("removed %s, left by an interrupted write", stale)


def locked(stage: Callable[..., T]) -> Callable[..., T]:
    """A stage ``stage(config, run, ...)`` that holds the run folder's lock while it runs."""
    @functools.wraps(stage)
    def holding_the_lock(config, run: RunDir, *args, **kwargs) -> T:
        with run.lock():
            return stage(config, run, *args, **kwargs)

    return holding_the_lock


def _read_holder(descriptor: int) -> str:
    try:
        holder = json.loads(os.pread(descriptor, 4096, 0) or b"{}")
        return f"pid {holder['pid']}: {holder['command']}"
    except (ValueError, KeyError):
        return "pid unknown"
