"""`review export`: one row per judgment, models un-blinded, as CSV or JSON Lines; with --pairs, preference pairs
(ties, both-bad and split items counted); no file replaced unasked."""

from __future__ import annotations

import csv
import json

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.splits import load_splits
from tunesmith.errors import TunesmithError
from tunesmith.review.export import AGREEING, BOTH_BAD, OUTVOTED, SPLIT_EVENLY, TIE, export_judgments, export_pairs
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


# ---- --pairs: the judgments as preference pairs --------------------------------------------------------------


def test_pairs_put_the_preferred_answer_first_and_count_what_gives_none(make_review, judge_for):
    run = make_review(reviewers=("ann", "bob", "cy"))
    with ReviewStore.open(run) as store:
        judge_for(store, "ann", 1, "tuned")  # item 1: two for tuned, one for base -> tuned chosen
        judge_for(store, "bob", 1, "tuned")
        judge_for(store, "cy", 1, "base")
        judge_for(store, "ann", 2, "base")  # item 2 (system prompt "Be brief."): base chosen
        judge_for(store, "ann", 3, "tuned")  # item 3: split evenly
        judge_for(store, "bob", 3, "base")
        judge_for(store, "ann", 4, "tie")
        judge_for(store, "bob", 4, "both_bad")
    result = export_pairs(run)
    assert result.output_path == str(run / "review_pairs.jsonl") and result.written == 2
    rows = [json.loads(line) for line in (run / "review_pairs.jsonl").read_text().splitlines()]
    assert rows == [
        {"prompt": "question 0", "chosen": "tuned says 0", "rejected": "base says 0"},
        {"prompt": "question 1", "chosen": "base says 1", "rejected": "tuned says 1", "system": "Be brief."}]
    assert dict(result.skipped) == {TIE: 1, BOTH_BAD: 1, SPLIT_EVENLY: 2, OUTVOTED: 1, AGREEING: 1}
    assert result.render("judgment").splitlines()[:2] == [
        f"wrote 2 pairs (preference: prompt, chosen, rejected) to {run / 'review_pairs.jsonl'}",
        "left out 6 judgments:"]
    assert result.exit_code == 0


def test_pairs_are_read_back_as_preference_rows(make_review, judge_for):
    run = make_review()
    with ReviewStore.open(run) as store:
        judge_for(store, "ann", 2, "tuned")
    export_pairs(run)
    (example,) = load_splits(DataConfig(train=str(run / "review_pairs.jsonl"),
                                        split={"validation": 0, "test": 0})).train
    assert example.messages == ({"role": "system", "content": "Be brief."}, {"role": "user", "content": "question 1"},
                                {"role": "assistant", "content": "tuned says 1"})
    assert example.rejected == {"role": "assistant", "content": "base says 1"}


def test_pairs_without_a_preference_write_nothing(review_run, judge_for):
    with ReviewStore.open(review_run) as store:
        judge_for(store, "ann", 1, "tie")
    result = export_pairs(review_run)
    assert result.written == 0 and result.exit_code == 1 and not (review_run / "review_pairs.jsonl").exists()
    assert result.render("judgment") == f"no pair found: wrote nothing\nleft out 1 judgment:\n  {TIE}: 1"


def test_pairs_never_replace_a_file_unasked(review_run, judge_for, tmp_path):
    with ReviewStore.open(review_run) as store:
        judge_for(store, "ann", 1, "tuned")
    out = tmp_path / "pairs.jsonl"
    out.write_text("keep me")
    with pytest.raises(TunesmithError, match="pairs.jsonl exists already.*--overwrite"):
        export_pairs(review_run, out)
    assert out.read_text() == "keep me"
    with pytest.raises(TunesmithError, match="pairs are written as JSON Lines"):
        export_pairs(review_run, tmp_path / "pairs.csv")
    assert export_pairs(review_run, out, overwrite=True).written == 1
    assert json.loads(out.read_text())["chosen"] == "tuned says 0"
