"""`tunesmith label export QUEUE OUT.jsonl`: the queue's labels as training rows in the run's own format under
tunesmith's own column names, written by the writer `tunesmith feedback export` uses
(`tunesmith.monitor.training_rows`).

An item's value is what its annotators said: the one label, or the majority's when several labelled it; a tie is
left out (the annotators disagree, and a coin is no teacher). Skips are no vote. An item nobody labelled is left
out and counted (skipped by all who saw it, or not labelled yet). A teacher's suggestion is never exported by
itself: it is advice until a person agrees.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from tunesmith.label.store import Annotation, Item, LabelQueue
from tunesmith.monitor.training_rows import RowsWritten, Skipped, TrainingRows, check_output
from tunesmith.run_dir import RunDir

NOT_LABELED = "not labelled yet"
ALL_SKIPPED = "skipped by every annotator who saw it"
DISAGREE = "annotators disagree (a tie between their labels)"


def export_labels(queue_path: str | Path, output_path: str | Path, overwrite: bool = False) -> RowsWritten:
    """Write the rows the queue's labels give (see the module docstring) to ``output_path`` (JSON Lines, whole or
    not at all; an existing file only with ``overwrite``)."""
    output_path = Path(output_path)
    check_output(output_path, overwrite, "label export")
    with LabelQueue.open(queue_path) as queue:
        items = queue.items()
        annotations = queue.annotations()
        run = RunDir(queue.meta.run)
    rows = TrainingRows(run, run.config())
    by_item: dict[int, list[Annotation]] = {}
    for annotation in annotations:
        by_item.setdefault(annotation.item_id, []).append(annotation)
    for item in items:
        try:
            rows.add(_request(item), majority(by_item.get(item.id, [])))
        except Skipped as skip:
            rows.skip(str(skip))
    return rows.write(output_path)


def majority(annotations: list[Annotation]) -> str:
    """The value most of an item's annotators gave; `Skipped` when none gave one or the top values tie."""
    votes = Counter(annotation.value for annotation in annotations if not annotation.skipped)
    if not votes:
        raise Skipped(ALL_SKIPPED if annotations else NOT_LABELED)
    ranked = votes.most_common()
    if len(ranked) > 1 and ranked[0][1] == ranked[1][1]:
        raise Skipped(DISAGREE)
    return ranked[0][0]


def _request(item: Item) -> dict:
    """The item as the request it was, for `tunesmith.monitor.training_rows.training_row`."""
    return {"messages": item.messages} if item.messages else {"text": item.input}
