"""Active learning: a queue of served requests worth labeling (the least confident, the most novel, no near-copies
of each other), an optional teacher model's suggestion for each, several annotators' labels in SQLite, their
agreement, and the training rows they give.

The package exports the store, which the web UI uses; `select` (picking requests from a request log), `teacher`
(an HTTP client), `stats` and `export` are imported from their modules where they are needed."""

from tunesmith.label.store import (
    QUEUE_FOLDER,
    Annotation,
    Item,
    LabelConflict,
    LabelError,
    LabelNotFound,
    LabelQueue,
    QueueMeta,
    queue_path,
)

__all__ = ["QUEUE_FOLDER", "Annotation", "Item", "LabelConflict", "LabelError", "LabelNotFound", "LabelQueue",
           "QueueMeta", "queue_path"]
