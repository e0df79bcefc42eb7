"""Atomic checkpoints: a crash while writing never damages the previous one.

Every folder is written with `tunesmith.atomic.staged_folder`, so `step-*` and `best` folders are always
complete. Optimizer, scheduler and RNG states are plain tensors/containers saved with torch.save and read back
with `weights_only=True` (no arbitrary unpickling); model weights are safetensors; the `TrainState` is JSON.
peft is imported where it is used (start-up time, see `tunesmith.models.loading`).
"""

from __future__ import annotations

import pickle
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from tunesmith.atomic import staged_folder
from tunesmith.errors import RunError
from tunesmith.json_files import read_json, write_json
from tunesmith.text import shorten
from tunesmith.train.state import TrainState

STEP_PREFIX = "step-"
STATE_FILE = "trainer_state.json"


def write_weights(model, folder: Path) -> None:
    """A PEFT adapter folder for adapter models, a full safetensors model folder otherwise."""
    if hasattr(model, "peft_config"):
        # tunesmith never resizes the vocabulary, so there are no embeddings to save beside the adapter; peft's
        # default ("auto") would find that out by reading the base's config, from the Hub when the base is named
        # by a Hub id: a network request at every checkpoint.
        model.save_pretrained(folder, safe_serialization=True, save_embedding_layers=False)
    else:
        model.save_pretrained(folder, safe_serialization=True)


def save_checkpoint(checkpoints: Path, model, optimizer, scheduler, state: TrainState) -> Path:
    """Write ``checkpoints/step-NNNNNN`` (the state's step) atomically and return it."""
    final = checkpoints / f"{STEP_PREFIX}{state.step:06d}"
    with staged_folder(final) as staging:
        write_weights(model, staging / "weights")
        torch.save(optimizer.state_dict(), staging / "optimizer.pt")
        torch.save(scheduler.state_dict(), staging / "scheduler.pt")
        torch.save(_rng_state(), staging / "rng.pt")
        write_json(staging / STATE_FILE, state.to_json())
    return final


def publish_best(checkpoints: Path, model) -> Path:
    """Replace ``checkpoints/best`` with the current weights (atomically; see `tunesmith.atomic`)."""
    best = checkpoints / "best"
    with staged_folder(best) as staging:
        write_weights(model, staging)
    return best


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


def load_checkpoint(folder: Path, model, optimizer, scheduler) -> TrainState:
    """Restore weights, optimizer, scheduler and RNG from a checkpoint; return its trainer state.

    Every file is read before any is applied, so a damaged checkpoint raises `DamagedCheckpoint` with the model,
    optimizer and RNG untouched (and the caller can try an older one).
    """
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
    if adapter.is_file():
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, tensors[0])
    else:  # strict=False: tied weights (lm_head = embeddings) are stored once
        for shard in tensors:
            model.load_state_dict(shard, strict=False)
    optimizer.load_state_dict(optimizer_state)
    scheduler.load_state_dict(scheduler_state)
    _set_rng_state(rng_state)
    return state


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
