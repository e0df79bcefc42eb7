"""Where a run's progress goes while it trains: ``metrics.jsonl`` (one JSON object per step and per validation),
the trackers of `train.report_to` (TensorBoard events here, the others through `tunesmith.tracking`), and a
progress bar on the terminal."""

from __future__ import annotations

import sys

from torch.utils.tensorboard import SummaryWriter
from tqdm.auto import tqdm

from tunesmith.config.schema import RunConfig
from tunesmith.json_files import append_jsonl, keep_jsonl
from tunesmith.run_dir import RunDir
from tunesmith.tracking import Trackers


class TrainingLog:
    """Opened at the start of training (``with TrainingLog(...) as log``), closed however training ends.

    On resume from step N, the lines a killed run logged after N are dropped from metrics.jsonl and hidden in
    TensorBoard (``purge_step``): they are logged again as the run replays those steps (MLflow and W&B cannot take
    points back: there the replayed steps appear twice). In a job of several processes only rank 0 logs
    (``writes``); the others' log takes everything and writes nothing. ``config`` gives `train.report_to`; without
    it, TensorBoard alone.
    """

    def __init__(self, run: RunDir, total_steps: int, resumed_step: int | None, writes: bool = True,
                 config: RunConfig | None = None):
        self.writes = writes
        if not writes:
            return
        if resumed_step is not None:
            keep_jsonl(run.metrics, lambda line: line["step"] <= resumed_step)
        report_to = config.train.report_to if config is not None else ["tensorboard"]
        self.writer = SummaryWriter(str(run.tensorboard), purge_step=resumed_step + 1 if resumed_step is not None
                                    else None) if "tensorboard" in report_to else None
        self.trackers = Trackers(run, config) if config is not None else None
        self.metrics = run.metrics.open("a", encoding="utf-8")
        # In CI logs (no TTY) a redraw every few seconds is enough; on a terminal it updates live.
        self.progress = tqdm(total=total_steps, initial=resumed_step or 0, desc="train", unit="step",
                             file=sys.stderr, mininterval=0.5 if sys.stderr.isatty() else 10.0, dynamic_ncols=True)

    def __enter__(self) -> TrainingLog:
        return self

    def __exit__(self, *exc_info) -> None:
        if not self.writes:
            return
        self.progress.close()
        self.metrics.close()
        if self.writer is not None:
            self.writer.close()
        if self.trackers is not None:
            self.trackers.close(failed=exc_info[0] is not None)

    def record(self, line: dict) -> None:
        """One metrics line (``step`` and numbers): to metrics.jsonl and, its numbers, to the trackers (under the
        same names and step) and TensorBoard (validation values, ``val_<name>``, as ``validation/<name>``)."""
        if not self.writes:
            return
        append_jsonl(self.metrics, line)
        if self.trackers is not None:
            self.trackers.metrics(line, line["step"])
        for key, value in line.items() if self.writer is not None else ():
            if key != "step" and isinstance(value, (int, float)) and not isinstance(value, bool):
                tag = f"validation/{key.removeprefix('val_')}" if key.startswith("val_") else f"train/{key}"
                self.writer.add_scalar(tag, value, line["step"])

    def step_done(self, loss: float, lr: float, tokens_per_s: float) -> None:
        if not self.writes:
            return
        self.progress.update(1)
        self.progress.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tokens_per_s:.0f}", refresh=False)

    def say(self, text: str) -> None:
        """A line above the progress bar."""
        if not self.writes:
            return
        self.progress.write(text)
