"""`tunesmith review export`: every judgment as one row, with the models un-blinded, as CSV or JSON Lines."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from tunesmith.atomic import write_atomic
from tunesmith.csv_cells import spreadsheet_csv
from tunesmith.errors import TunesmithError
from tunesmith.json_files import jsonl_text
from tunesmith.review.store import Judgment, ReviewStore
from tunesmith.run_dir import check_out_target

ExportFormat = Literal["csv", "jsonl"]
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)
COLUMNS = ("reviewer", "reviewer_kind", "item_id", "location", "prompt", "model_a", "model_b", "verdict", "winner",
           "comment", "judged_at")
"""Every column but the scores, in order."""


def export_judgments(run_root: str | Path, format: ExportFormat, out: str | Path | None = None,
                     overwrite: bool = False) -> tuple[Path, int]:
    """Write the review's judgments to ``out`` (default ``<run>/review_judgments.<format>``, outside ``review/``,
    which `create_review` replaces whole); an existing file is replaced only with ``overwrite``. Returns the path
    and the number of rows.

    A row holds the reviewer (and whether a person or a judge model), the item, the prompt's location and text, the
    model shown as A and as B, the verdict as given (``a``, ``b``, ``tie``, ``both_bad``) and the model it names
    (``winner``), the comment, each rubric score of each side, and when it was made (UTC). JSON Lines keeps the
    scores as ``scores_a``/``scores_b`` objects; CSV has a ``score_a_<criterion>``/``score_b_<criterion>`` column
    per criterion of the rubric. Text cells a spreadsheet would run as a formula (``=``, ``+``, ``-``, ``@``...) are
    written with a leading ``'`` (`tunesmith.csv_cells`); JSON Lines keeps every text as it is."""
    if format not in EXPORT_FORMATS:
        raise TunesmithError(f"unknown export format {format!r}", f"use one of {', '.join(EXPORT_FORMATS)}")
    path = check_out_target(Path(out) if out is not None else Path(run_root) / f"review_judgments.{format}")
    if path.exists() and not overwrite:
        raise TunesmithError(f"{path} exists already", "add --overwrite to replace it, or give another --out")
    with ReviewStore.open(run_root) as store:
        prompts = {item.item_id: item.prompt for item in store.items()}
        rows = [judgment_row(judgment, prompts[judgment.item_id]) for judgment in store.judgments()]
        rubric = store.rubric
    write_atomic(path, jsonl_text(rows) if format == "jsonl" else csv_text(rows, rubric))
    return path, len(rows)


def judgment_row(judgment: Judgment, prompt: str) -> dict:
    row = {column: prompt if column == "prompt" else getattr(judgment, column) for column in COLUMNS}
    return {**row, "scores_a": judgment.scores_a, "scores_b": judgment.scores_b}


def csv_text(rows: list[dict], rubric: list[str]) -> str:
    scores = [f"score_{side}_{criterion}" for side in ("a", "b") for criterion in rubric]
    flat = []
    for row in rows:
        cells = {name: row[name] for name in COLUMNS}
        for side in ("a", "b"):
            cells.update({f"score_{side}_{criterion}": row[f"scores_{side}"].get(criterion) for criterion in rubric})
        flat.append(cells)
    return spreadsheet_csv([*COLUMNS, *scores], flat)
