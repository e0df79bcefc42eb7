"""What a resumed run restores besides weights, optimizer, scheduler and RNG: one typed object, saved with every
checkpoint as ``trainer_state.json``."""

from __future__ import annotations

from dataclasses import dataclass, field

from tunesmith.train.budget import Budget


@dataclass
class TrainState:
    step: int = 0
    """Optimizer steps done (skipped non-finite steps included: their batches were consumed)."""
    epoch: int = 0
    batch: int = 0
    """The data cursor: the next batch is `BatchPlan.epoch(epoch)[batch]`."""
    best_val_loss: float | None = None
    best_step: int | None = None
    best_val_metrics: dict[str, float | None] | None = None
    """The validation values at the best step: ``val_loss`` and the ``val_<metric>`` of `train.val_metrics`."""
    evals_without_gain: int = 0
    """Validations since the last new best (early stopping counts these)."""
    tokens: int = 0
    """Real (non-padding) tokens trained on."""
    elapsed_s: float = 0.0
    """Training time so far, across resumes."""
    skipped_steps: list[int] = field(default_factory=list)
    """Steps whose update `train.on_nonfinite: skip` dropped."""
    global_batch: int | None = None
    """Rows (or packs) per optimizer step, all processes together: the cursor counts such batches, so a resume
    needs the same (None in checkpoints written before it was recorded)."""
    budget: Budget | None = None
    """The steps and intervals the run was started with (None in checkpoints written before it was recorded)."""
    data_files: dict[str, str] | None = None
    """sha256 of each data file the run trains from (`tunesmith.train.resume.data_fingerprint`): a resume refuses
    files whose contents changed (None in checkpoints written before it was recorded)."""

    def to_json(self) -> dict:
        return {"step": self.step, "cursor": [self.epoch, self.batch], "best_val_loss": self.best_val_loss,
                "best_step": self.best_step, "best_val_metrics": self.best_val_metrics,
                "evals_without_gain": self.evals_without_gain, "tokens": self.tokens, "elapsed_s": self.elapsed_s,
                "skipped_steps": list(self.skipped_steps), "global_batch": self.global_batch,
                "budget": self.budget.to_json() if self.budget else None, "data_files": self.data_files}

    @classmethod
    def from_json(cls, data: dict) -> TrainState:
        epoch, batch = data["cursor"]
        budget = data.get("budget")
        # Checkpoints written before a field existed lack it: no skipped steps, unknown batch, metrics and budget.
        return cls(step=data["step"], epoch=epoch, batch=batch, best_val_loss=data["best_val_loss"],
                   best_step=data["best_step"], best_val_metrics=data.get("best_val_metrics"),
                   evals_without_gain=data["evals_without_gain"], tokens=data["tokens"],
                   elapsed_s=data["elapsed_s"], skipped_steps=list(data.get("skipped_steps", [])),
                   global_batch=data.get("global_batch"), budget=Budget.from_json(budget) if budget else None,
                   data_files=data.get("data_files"))
