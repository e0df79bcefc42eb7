"""Which step `checkpoints/best` holds, and keeping it on the timeline a resume continues.

`best/` is replaced whenever a validation sets a new best (`publish_best`); `best/best.json` then records the step
and validation loss of those weights. It is written into the new folder right after that folder is published, so a
folder replaced but not yet marked has no record and counts as unknown, never as another step's.

A resume continues from a checkpoint, whose state names the best step of its own timeline. `best/` may hold weights
from steps past that checkpoint, which the resumed timeline never reached: a newer checkpoint was damaged and passed
over, or the run was killed between a new best and the next checkpoint. `align_best` puts `best/` back on the
resumed timeline before training goes on: kept when its record names the timeline's best step and its files read,
else written again from the weights of that step (the resumed checkpoint's own, or an older checkpoint's), else,
when no checkpoint holds them any more, removed, and the state forgets that best (the next validation sets one).
So `train_summary.json`'s `best_step` always names the weights in `best/`.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from safetensors import SafetensorError, safe_open

from tunesmith import distributed
from tunesmith.atomic import remove_folder, staged_folder
from tunesmith.errors import RunError
from tunesmith.json_files import read_json, write_json
from tunesmith.train.checkpoint import STEP_PREFIX, Checkpoint, publish_best

log = logging.getLogger("tunesmith")

BEST_RECORD = "best.json"
"""In `best/`: ``{"step": ..., "val_loss": ...}`` of the weights beside it."""


def best_record(checkpoints: Path) -> dict | None:
    """What `best/best.json` says, or None when there is no readable record."""
    try:
        record = read_json(checkpoints / "best" / BEST_RECORD)
    except (RunError, OSError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


def mark_best(checkpoints: Path, step: int, val_loss: float | None) -> None:
    write_json(checkpoints / "best" / BEST_RECORD, {"step": step, "val_loss": val_loss})


def weights_readable(folder: Path) -> bool:
    """Whether ``folder`` holds a model or adapter config and safetensors files whose headers read: what an empty
    or cut-off file (a full disk, a copy cut short) fails."""
    files = sorted(folder.glob("*.safetensors"))
    if not files or not any((folder / name).is_file() for name in ("adapter_config.json", "config.json")):
        return False
    try:
        for file in files:
            with safe_open(file, "pt") as weights:
                weights.keys()
    except (OSError, SafetensorError):
        return False
    return True


def align_best(checkpoints: Path, checkpoint: Checkpoint, model) -> None:
    """Make `best/` the best weights of the timeline ``checkpoint`` continues (see the module docstring); ``model``
    holds the checkpoint's weights. Rank 0 decides and writes; every process's state forgets a best whose weights
    are gone."""
    state = checkpoint.state
    forget = _align(checkpoints, checkpoint, model) if distributed.is_main() else None
    if distributed.broadcast(forget):
        state.best_val_loss = state.best_step = state.best_val_metrics = None
        state.evals_without_gain = 0


def _align(checkpoints: Path, checkpoint: Checkpoint, model) -> bool:
    """Whether the state must forget its best (rank 0's part of `align_best`)."""
    state, best = checkpoint.state, checkpoints / "best"
    step = state.best_step
    if step is None:
        if best.exists():
            log.warning("removed %s: it holds weights of steps after %s, which the resume continues from", best,
                        checkpoint.folder.name)
            remove_folder(best)
        return False
    record = best_record(checkpoints)
    if record is not None and record.get("step") == step and weights_readable(best):
        return False
    if record is not None and record.get("step") == step:
        why = f"{best} (the best weights, of step {step}) is damaged"
    else:
        why = f"{best} does not hold the best weights of step {step}, which {checkpoint.folder.name} names"
    source = checkpoints / f"{STEP_PREFIX}{step:06d}" / "weights"
    if step == state.step:
        publish_best(checkpoints, model)
    elif weights_readable(source):
        with staged_folder(best) as staging:
            shutil.copytree(source, staging, dirs_exist_ok=True)
    else:
        if best.exists():
            remove_folder(best)
        log.warning("%s, and no checkpoint holds those any more: removed it; the next validation chooses the best "
                    "weights again", why)
        return True
    mark_best(checkpoints, step, state.best_val_loss)
    log.warning("%s: wrote them again from the checkpoint of step %d", why, step)
    return False
