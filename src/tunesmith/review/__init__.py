"""Stage: review. People (and a judge model) compare two models' answers blind; the judgments are stored in SQLite
in the run folder, exported, and summarized with intervals, tests and agreement."""

from tunesmith.review.store import (
    VERDICTS,
    Judgment,
    QueueItem,
    ReviewConflict,
    ReviewError,
    ReviewNotFound,
    ReviewStore,
)

__all__ = ["VERDICTS", "Judgment", "QueueItem", "ReviewConflict", "ReviewError", "ReviewNotFound", "ReviewStore"]
