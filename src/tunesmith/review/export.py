"""`tunesmith review export`: every judgment as one row, with the models un-blinded, as CSV or JSON Lines; with
``--pairs``, the judgments as preference pairs (`export_pairs`)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal, get_args

from tunesmith.atomic import write_atomic
from tunesmith.csv_cells import spreadsheet_csv
from tunesmith.data.pair_rows import PairRows, PairsWritten
from tunesmith.errors import TunesmithError
from tunesmith.json_files import jsonl_text
from tunesmith.review.store import Item, Judgment, ReviewStore
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


TIE = "a tie"
BOTH_BAD = "both answers bad"
SPLIT_EVENLY = "the item's judgments split evenly between its two answers"
OUTVOTED = "outvoted by the other judgments of its item"
AGREEING = "another judgment of an item already written (one pair per item)"


def export_pairs(run_root: str | Path, out: str | Path | None = None, overwrite: bool = False) -> PairsWritten:
    """Write the review's judgments as preference pairs to ``out`` (default ``<run>/review_pairs.jsonl``; an
    existing file only with ``overwrite``): for each item, the answer its judgments prefer is chosen and the other
    one rejected. Ties and both-bad verdicts say nothing about which answer is better; an item whose ``a``/``b``
    judgments split evenly has no preferred answer; the judgments a majority outvotes, and those that agree with
    the item's pair, give no second row. Each is counted by reason (`PairsWritten.render`). The prompt is the item's
    (its system prompt and user turn), so the pairs read as ``preference`` rows (`tunesmith.data.pair_rows`)."""
    path = check_out_target(Path(out) if out is not None else Path(run_root) / "review_pairs.jsonl")
    if not path.name.endswith(".jsonl"):
        raise TunesmithError(f"{path}: pairs are written as JSON Lines", "name the file *.jsonl")
    if path.exists() and not overwrite:
        raise TunesmithError(f"{path} exists already", "add --overwrite to replace it, or give another --out")
    with ReviewStore.open(run_root) as store:
        items = {item.item_id: item for item in store.items()}
        judgments = store.judgments()
    pairs = PairRows()
    votes: dict[int, Counter] = {}
    for judgment in judgments:
        if judgment.winner is None:
            pairs.skip(TIE if judgment.verdict == "tie" else BOTH_BAD)
        else:
            votes.setdefault(judgment.item_id, Counter())[judgment.winner] += 1
    for item_id, counts in votes.items():
        (winner, most), *others = counts.most_common()
        if others and others[0][1] == most:
            pairs.skip(SPLIT_EVENLY, most + others[0][1])
            continue
        pairs.skip(OUTVOTED, sum(count for _, count in others))
        item = items[item_id]
        loser = item.second if winner == item.first else item.first
        pairs.add(_prompt_of(item), item.answers[winner], item.answers[loser])
        pairs.skip(AGREEING, most - 1)
    return pairs.write(path)


def _prompt_of(item: Item) -> list[dict]:
    return [*([{"role": "system", "content": item.system}] if item.system else []),
            {"role": "user", "content": item.prompt}]
