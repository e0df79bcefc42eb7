"""`tunesmith label create`: pick requests from a request log (`tunesmith.label.select`), ask a teacher about
each when one is given (`tunesmith.label.teacher`), and write the queue (`tunesmith.label.store`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tunesmith.label.select import DEFAULT_BUDGET, Selection, select_requests
from tunesmith.label.store import LabelConflict, LabelError, LabelQueue, QueueMeta, now, queue_path
from tunesmith.label.teacher import suggest
from tunesmith.review.endpoint import ChatEndpoint


@dataclass
class CreatedQueue:
    path: Path
    selection: Selection
    suggestions: int
    """Items with a teacher's suggestion."""
    teacher_errors: dict[str, int]
    """Why the other items have none: error → items (a teacher that is down gives one line, not one a request)."""

    def render(self) -> str:
        selection = self.selection
        lines = [f"queue: {self.path} ({len(selection.picked)} requests to label of {selection.requests} in the "
                 f"log; run {selection.run.root}, {selection.task})"]
        if selection.left_out:
            lines.append(f"left out {sum(selection.left_out.values())}:")
            lines += [f"  {reason}: {count}" for reason, count in selection.left_out.most_common()]
        lines += [f"note: {note}" for note in selection.notes]
        if self.suggestions or self.teacher_errors:
            lines.append(f"teacher: {self.suggestions} suggestions")
            lines += [f"  no suggestion, {error}: {count}" for error, count in
                      sorted(self.teacher_errors.items(), key=lambda entry: -entry[1])]
        return "\n".join(lines)


def create_queue(log_dir: str | Path, run: str | Path | None = None, strategy: str = "uncertainty",
                 budget: int = DEFAULT_BUDGET, out: str | Path | None = None, overwrite: bool = False,
                 teacher: ChatEndpoint | None = None, transport=None) -> CreatedQueue:
    """Write a labeling queue of the log's requests worth labeling (``out``, default ``<run>/labeling/queue.db``).
    An existing queue is replaced only with ``overwrite``: checked before the teacher is asked, so a refusal is
    quick. ``transport`` replaces the teacher's network (tests)."""
    selection = select_requests(log_dir, run, strategy, budget)
    path = Path(out) if out is not None else queue_path(selection.run.root)
    if path.exists() and not overwrite:
        raise LabelConflict(f"{path} exists already; a queue is not replaced unless asked",
                            "pass --overwrite to replace it and lose its annotations, or name another file with --out")
    if path.suffix == ".jsonl":
        raise LabelError(f"{path}: a queue is an SQLite database", "name it *.db")
    candidates = [entry.candidate for entry in selection.picked]
    suggestions = (suggest(candidates, teacher, selection.task, selection.labels) if teacher is not None
                   else [None] * len(candidates))
    items = []
    errors: dict[str, int] = {}
    for entry, suggestion in zip(selection.picked, suggestions):
        candidate = entry.candidate
        items.append({"request_id": candidate.request_id, "input": candidate.input, "messages": candidate.messages,
                      "prediction": None if candidate.prediction is None else str(candidate.prediction),
                      "confidence": candidate.confidence, "novelty": candidate.novelty, "reason": entry.reason,
                      "teacher_suggestion": suggestion.value if suggestion else None,
                      "teacher_error": suggestion.error if suggestion else None})
        if suggestion is not None and suggestion.error is not None:
            errors[_error_kind(suggestion.error)] = errors.get(_error_kind(suggestion.error), 0) + 1
    meta = QueueMeta(run=str(selection.run.root), log_dir=str(log_dir), task=selection.task, labels=selection.labels,
                     format=selection.format, strategy=strategy, budget=budget, created=now(),
                     teacher_model=teacher.model if teacher is not None else None)
    LabelQueue.create(path, meta, items, overwrite=overwrite).close()
    return CreatedQueue(path, selection, sum(bool(item["teacher_suggestion"]) for item in items), errors)


def _error_kind(error: str) -> str:
    """An error without the reply it quotes, so that unusable replies count as one kind."""
    return error.split(": '", 1)[0].split(': "', 1)[0]
