"""Human review. People (and a judge model) compare two models' answers blind; the judgments are stored in SQLite
in the run folder, exported, and summarized with intervals, tests and agreement.

The package exports the store only, which the web UI and the run report use: `create` loads models (torch), and
`judge` an HTTP client, so they are imported from their modules where they are needed (`create_review`,
`judge_review`, `review_stats`, `export_judgments`)."""

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
