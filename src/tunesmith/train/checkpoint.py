"""Atomic checkpoints: a crash while writing never damages the previous one.

Every folder is written with `tunesmith.atomic.staged_folder`, so `step-*` and `best` folders are always
complete; a full disk while writing one is one line naming it, the checkpoint that is intact and the one a
`--resume` goes on from. Optimizer, scheduler and RNG states are plain tensors/containers saved with torch.save
and read back with `weights_only=True` (no arbitrary unpickling); model weights are safetensors; the
`TrainState` is JSON. Weights and optimizer state are full (never a process's shard; see
`tunesmith.train.strategy`), so a checkpoint resumes on any number of processes. Reading (`read_checkpoint`) is
apart from applying: the weights go into the model before accelerate wraps (and maybe shards) it, the optimizer
state after.
peft is imported where it is used (start-up time, see `tunesmith.models.loading`).
"""

from __future__ import annotations

import logging
import pickle
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from tunesmith.atomic import staged_folder
from tunesmith.errors import RunError
from tunesmith.json_files import read_json, write_json
from tunesmith.run_dir import RunDir
from tunesmith.text import shorten
from tunesmith.train.state import TrainState

log = logging.getLogger("tunesmith")

STEP_PREFIX = "step-"
STATE_FILE = "trainer_state.json"


def write_weights(model, folder: Path, weights: dict | None = None) -> None:
    """A PEFT adapter folder for adapter models, a full safetensors model folder otherwise. ``weights`` is the
    model's full state dict when it was gathered from shards (else the model's own tensors are written)."""
    if hasattr(model, "peft_config"):
        # tunesmith never resizes the vocabulary, so there are no embeddings to save beside the adapter; peft's
        # default ("auto") would find that out by reading the base's config, from the Hub when the base is named
        # by a Hub id: a network request at every checkpoint.
        model.save_pretrained(folder, safe_serialization=True, save_embedding_layers=False, state_dict=weights)
    else:
        model.save_pretrained(folder, safe_serialization=True, state_dict=weights)


def save_checkpoint(checkpoints: Path, model, optimizer_state: dict, scheduler, state: TrainState,
                    weights: dict | None = None) -> Path:
    """Write ``checkpoints/step-NNNNNN`` (the state's step) atomically and return it."""
    final = checkpoints / f"{STEP_PREFIX}{state.step:06d}"
    previous = latest_checkpoint(checkpoints)
    kept = f"{previous.name} and the checkpoints before it are intact" if previous else "no earlier checkpoint exists"
    with staged_folder(final, what=f"checkpoint {final}", kept=kept, retry=_retry(previous)) as staging:
        write_weights(model, staging / "weights", weights)
        torch.save(optimizer_state, staging / "optimizer.pt")
        torch.save(scheduler.state_dict(), staging / "scheduler.pt")
        torch.save(_rng_state(), staging / "rng.pt")
        write_json(staging / STATE_FILE, state.to_json())
    return final


def publish_best(checkpoints: Path, model, weights: dict | None = None) -> Path:
    """Replace ``checkpoints/best`` with the current weights (atomically; see `tunesmith.atomic`)."""
    best = checkpoints / "best"
    kept = "the previous best weights are intact" if best.is_dir() else None
    with staged_folder(best, what=f"the best weights {best}", kept=kept,
                       retry=_retry(latest_checkpoint(checkpoints))) as staging:
        write_weights(model, staging, weights)
    return best


def _retry(checkpoint: Path | None) -> str | None:
    """What to do after a full disk stopped training (None: `write_failure`'s "run the command again")."""
    if checkpoint is None:
        return None
    return f"free some space, then run the same command with --resume to go on from {checkpoint.name}"


def checkpoints_newest_first(checkpoints: Path) -> list[Path]:
    """The step folders, newest first (a folder still being written has a staging name and is not one)."""
    return sorted((p for p in checkpoints.glob(f"{STEP_PREFIX}*") if p.is_dir()), reverse=True)


def latest_checkpoint(checkpoints: Path) -> Path | None:
    steps = checkpoints_newest_first(checkpoints)
    return steps[0] if steps else None


def prune_checkpoints(checkpoints: Path, keep: int) -> None:
    """Keep the ``keep`` newest step folders (`best` is a separate folder and is never pruned)."""
    steps = sorted(checkpoints.glob(f"{STEP_PREFIX}*"))
    for old in steps[:-keep]:
        shutil.rmtree(old)


class DamagedCheckpoint(Exception):
    """A checkpoint folder with a missing, empty or unreadable file (a disk fault, a copy cut short)."""


@dataclass
class Checkpoint:
    """Everything a checkpoint folder holds, read and checked, nothing applied yet."""

    folder: Path
    state: TrainState
    weights: list[dict[str, torch.Tensor]]
    """The safetensors files' tensors: one adapter file, or the shards of a full model."""
    adapter: bool
    optimizer: dict
    scheduler: dict
    rng: dict

    def apply_weights(self, model) -> None:
        if self.adapter:
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(model, self.weights[0])
            return
        for shard in self.weights:  # strict=False: tied weights (lm_head = embeddings) are stored once
            model.load_state_dict(shard, strict=False)

    def apply_rng(self) -> None:
        _set_rng_state(self.rng)


def read_checkpoint(folder: Path) -> Checkpoint:
    """Every file of a checkpoint, read before any is applied, so a damaged checkpoint raises
    `DamagedCheckpoint` with the model, optimizer and RNG untouched (and the caller can try an older one)."""
    try:
        state = TrainState.from_json(read_json(folder / STATE_FILE) or {})
        weights = folder / "weights"
        adapter = weights / "adapter_model.safetensors"
        shards = [adapter] if adapter.is_file() else sorted(weights.glob("*.safetensors"))
        if not shards:
            raise FileNotFoundError(f"no weights in {weights}")
        tensors = [load_file(shard) for shard in shards]
        optimizer_state, scheduler_state, rng_state = (
            torch.load(folder / name, weights_only=True) for name in ("optimizer.pt", "scheduler.pt", "rng.pt"))
    except (OSError, RuntimeError, ValueError, KeyError, TypeError, EOFError, pickle.UnpicklingError,
            SafetensorError, RunError) as exc:
        raise DamagedCheckpoint(shorten(str(exc), 160)) from None
    return Checkpoint(folder, state, tensors, adapter.is_file(), optimizer_state, scheduler_state, rng_state)


def _rng_state() -> dict:
    # numpy's key array is stored as a tensor so the file loads with weights_only=True
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def newest_intact_checkpoint(run: RunDir) -> Checkpoint:
    """The newest checkpoint that reads back whole (a damaged newer one is passed over, and the log says so)."""
    candidates = checkpoints_newest_first(run.checkpoints)
    if not candidates:
        raise RunError(f"nothing to resume: {run.checkpoints} holds no checkpoint", "start without --resume")
    for folder in candidates:
        try:
            return read_checkpoint(folder)
        except DamagedCheckpoint as damage:
            log.warning("checkpoint %s is damaged (%s); trying the one before it", folder.name, damage)
    raise RunError(f"nothing to resume: every checkpoint in {run.checkpoints} is damaged",
                   "start the run again without --resume")
