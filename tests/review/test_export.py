"""`review export`: one row per judgment, models un-blinded, as CSV or JSON Lines; no file replaced unasked."""

from __future__ import annotations

import csv
import json

import pytest

from tunesmith.errors import TunesmithError
from tunesmith.review.export import export_judgments
from tunesmith.review.store import ReviewStore


@pytest.fixture()
def judged(review_run, judge_for):
    with ReviewStore.open(review_run) as store:
        judge_for(store, "ann", 1, "tuned", "tuned, clearly", scores={"tuned": {"correct": 5}, "base": {"correct": 2}})
        judge_for(store, "bob", 1, "base", 'says "no", then, yes')
        judge_for(store, "bob", 2, "both_bad")
    return review_run


def test_jsonl_rows_name_the_models(judged):
    path, count = export_judgments(judged, "jsonl")
    assert path == judged / "review_judgments.jsonl" and count == 3
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(row["reviewer"], row["winner"], row["prompt"]) for row in rows] == [
        ("ann", "tuned", "question 0"), ("bob", "base", "question 0"), ("bob", None, "question 1")]
    first = rows[0]
    assert {first["model_a"], first["model_b"]} == {"tuned", "base"}
    assert first[f"scores_{'a' if first['model_a'] == 'tuned' else 'b'}"] == {"correct": 5}
    assert first["verdict"] == ("a" if first["model_a"] == "tuned" else "b")
    assert first["reviewer_kind"] == "human" and first["judged_at"].endswith("+00:00")


def test_csv_has_a_column_per_side_and_criterion(judged, tmp_path):
    path, _ = export_judgments(judged, "csv", tmp_path / "out.csv")
    rows = list(csv.DictReader(path.open(newline="")))
    assert list(rows[0])[-6:] == ["score_a_correct", "score_a_helpful", "score_a_fluent", "score_b_correct",
                                  "score_b_helpful", "score_b_fluent"]
    tuned_side = "a" if rows[0]["model_a"] == "tuned" else "b"
    assert rows[0][f"score_{tuned_side}_correct"] == "5" and rows[0]["score_a_helpful"] == ""
    assert rows[1]["comment"] == 'says "no", then, yes'  # quoted by the csv module, read back whole
    assert rows[2]["verdict"] == "both_bad" and rows[2]["winner"] == ""


def test_existing_file_needs_overwrite(judged, tmp_path):
    out = tmp_path / "mine.csv"
    out.write_text("keep me")
    with pytest.raises(TunesmithError, match="mine.csv exists already.*--overwrite"):
        export_judgments(judged, "csv", out)
    assert out.read_text() == "keep me"
    export_judgments(judged, "csv", out, overwrite=True)
    assert out.read_text().startswith("reviewer,")


def test_run_without_review(tmp_path):
    with pytest.raises(TunesmithError, match="has no review"):
        export_judgments(tmp_path, "jsonl")
