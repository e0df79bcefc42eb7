"""What the stages of one run share: its splits and its `Task`, loaded once per run and passed to each stage.

Not a process-wide memo: the pipeline makes one `RunInputs` per run (`tunesmith.pipeline.run_pipeline`), and a
command on one stage of a run folder (`tunesmith eval`, `compare`, `review create`, ...) makes its own.
"""

from __future__ import annotations

from functools import cached_property

from tunesmith.config.schema import RunConfig
from tunesmith.data.example import Splits
from tunesmith.data.splits import load_run_splits
from tunesmith.data.task import Task


class RunInputs:
    """The splits of ``config``'s data and the task they are scored on.

    Each is read the first time a stage asks for it and kept for the stages after it: so a stage that reads only
    the run folder (export, report) reads no data, and an unreadable file fails the stage that needed it.
    ``splits`` gives splits the caller holds already (a sweep trial's, without the test rows) instead of reading
    them. Treat both as read-only: every stage of the run sees the same objects.
    """

    def __init__(self, config: RunConfig, splits: Splits | None = None) -> None:
        self.config = config
        self._given_splits = splits

    @cached_property
    def splits(self) -> Splits:
        return self._given_splits if self._given_splits is not None else load_run_splits(self.config.data)

    @cached_property
    def task(self) -> Task:
        return Task.resolve(self.config, self.splits)
