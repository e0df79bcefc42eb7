"""`tunesmith feedback export LOG_DIR OUT.jsonl`: turn what users said about served answers into training rows.

Feedback records are tied to request records by ``id`` (the latest feedback of a request wins). A request becomes
a row when its target is known:

- a ``correction`` (or, for classification and regression, a ``label``) is the target;
- an answer rated ``up`` is kept as it was (the predicted label, for classification);
- an answer rated ``down`` with nothing better is left out;
- with ``min_rating="none"`` an answer nobody rated is kept too (default ``"up"``: only explicit feedback).

Rows are written by `tunesmith.monitor.training_rows` (the writer `tunesmith label export` shares): in the run's
own format under tunesmith's own column names (``text``/``label`` for classification, ...), so `tunesmith data
check` reads the file alone; each row once; what cannot become a row is skipped and counted by reason. A request
record that asked for no answer, or was refused before reaching a model (a 401, a rejected feedback POST), is
counted as what it was (``a refused request (401 to /v1/classify)``), never as another model's answer.
"""

from __future__ import annotations

from pathlib import Path

from tunesmith.config.vocabulary import LABELED_FORMATS
from tunesmith.errors import ConfigError, RunError
from tunesmith.monitor.request_log import answered, read_records, refusal, served_run
from tunesmith.monitor.training_rows import (
    DUPLICATE,
    MULTI_TURN,
    NO_CONTENT,
    NOT_A_NUMBER,
    OTHER_TURNS,
    UNKNOWN_LABEL,
    RowsWritten,
    Skipped,
    TrainingRows,
    check_output,
    number,
)

__all__ = ["DUPLICATE", "FAILED", "MIN_RATINGS", "MULTI_TURN", "NOT_A_NUMBER", "NO_CONTENT", "NO_REQUEST",
           "OTHER_MODEL", "OTHER_TURNS", "RATED_DOWN", "UNKNOWN_LABEL", "UNRATED", "FeedbackExport",
           "export_feedback"]

MIN_RATINGS = ("up", "none")

UNRATED = "not rated (--min-rating none keeps unrated answers)"
RATED_DOWN = "rated down without a correction"
FAILED = "the request failed, and no correction gives its answer"
OTHER_MODEL = "answered by another served model"
NO_REQUEST = "feedback whose request is not in the log"

def check_exported(request: dict, served) -> None:
    """Raise `Skipped` for a logged request that no exported row comes from: one refused before reaching a model,
    or one another served model answered than the one exported (`served_run`'s ``model``)."""
    refused = refusal(request)
    if refused is not None:
        raise Skipped(refused)
    if served.model is not None and request.get("model") != served.model:
        raise Skipped(OTHER_MODEL)


FeedbackExport = RowsWritten
"""What `export_feedback` wrote and skipped."""


def export_feedback(log_dir: str | Path, output_path: str | Path, run: str | Path | None = None,
                    min_rating: str = "up", overwrite: bool = False) -> FeedbackExport:
    """Write the rows the log's feedback gives (see the module docstring) to ``output_path`` (JSON Lines, written
    whole or not at all; an existing file only with ``overwrite``). The run is ``run``, else the primary
    model's run in served.json."""
    if min_rating not in MIN_RATINGS:
        raise ConfigError("--min-rating", f"{min_rating!r} is not one of {', '.join(MIN_RATINGS)}")
    output_path = Path(output_path)
    check_output(output_path, overwrite, "feedback export", log_dir)
    served = served_run(log_dir, run)
    if served.run is None:
        raise RunError(f"feedback export needs the run whose data format to write: {served.missing}")
    rows = TrainingRows(served.run, served.run.config())
    log = read_records(log_dir)
    for request in log.requests:
        try:
            check_exported(request, served)
            rows.add(request, _target(request, log.feedback.get(request.get("id")), rows.format, min_rating))
        except Skipped as skip:
            rows.skip(str(skip))
    requested = {request.get("id") for request in log.requests}
    rows.skip(NO_REQUEST, sum(request_id not in requested for request_id in log.feedback))
    return rows.write(output_path)


def _target(request: dict, feedback: dict | None, fmt: str, min_rating: str) -> str | float:
    """What the row teaches: the correction, else the answer the user approved (or, with ``min_rating`` none,
    did not judge)."""
    feedback = feedback or {}
    better = feedback.get("label") if fmt in LABELED_FORMATS else None
    if better is None and feedback.get("correction"):
        better = feedback["correction"]
    if better is not None:
        return number(better) if fmt == "regression" else better
    if feedback.get("rating") == "down":
        raise Skipped(RATED_DOWN)
    if feedback.get("rating") != "up" and min_rating == "up":
        raise Skipped(UNRATED)
    if not answered(request):
        raise Skipped(FAILED)
    if fmt == "classification" and request.get("label") is not None:
        return request["label"]
    if not isinstance(request.get("answer"), str):
        raise Skipped(NO_CONTENT)
    return number(request["answer"]) if fmt == "regression" else request["answer"]
