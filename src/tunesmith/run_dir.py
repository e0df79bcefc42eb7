"""The layout of a run folder: every stage reads and writes its files through these names."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from tunesmith.atomic import recover_folder
from tunesmith.config import RunConfig, validate_config
from tunesmith.errors import RunError


@dataclass(frozen=True)
class RunDir:
    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    config_path = property(lambda self: self.root / "config.yaml")
    """The resolved config of the run (every default filled in)."""
    metrics = property(lambda self: self.root / "metrics.jsonl")
    """One JSON object per line: training steps (`step`, `loss`, `lr`, `tokens_per_s`, ...) and validations
    (`step`, `val_loss`)."""
    tensorboard = property(lambda self: self.root / "tensorboard")
    checkpoints = property(lambda self: self.root / "checkpoints")
    best = property(lambda self: self.root / "checkpoints" / "best")
    """Weights with the lowest validation loss: a PEFT adapter folder (lora) or a full HF model folder (full)."""
    train_summary = property(lambda self: self.root / "train_summary.json")
    data_summary = property(lambda self: self.root / "data_summary.json")
    eval_json = property(lambda self: self.root / "eval.json")
    predictions = property(lambda self: self.root / "predictions.jsonl")
    adapter = property(lambda self: self.root / "adapter")
    merged = property(lambda self: self.root / "merged")
    timings = property(lambda self: self.root / "timings.json")
    """Seconds each pipeline stage took, and the total."""
    report_md = property(lambda self: self.root / "report.md")
    report_html = property(lambda self: self.root / "report.html")

    def config(self) -> RunConfig:
        """The run's resolved `RunConfig`."""
        if not self.config_path.is_file():
            raise RunError(f"{self.root} is not a tunesmith run folder (no config.yaml)")
        return validate_config(yaml.safe_load(self.config_path.read_text(encoding="utf-8")))

    def best_weights(self) -> Path:
        """`best`, after finishing an interrupted replacement (see `tunesmith.atomic`); an error if training
        never produced one."""
        recover_folder(self.best)
        return self.require(self.best, "train")

    def require(self, path: Path, produced_by: str) -> Path:
        if not path.exists():
            raise RunError(f"{path} does not exist", f"run `tunesmith {produced_by}` first")
        return path

