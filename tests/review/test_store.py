"""The review store: blind queues, judgments committed at once, undo, and the errors the web UI maps to 4xx."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

import pytest

from tunesmith.errors import RunError
from tunesmith.review.store import (
    VERDICTS,
    ReviewConflict,
    ReviewError,
    ReviewNotFound,
    ReviewStore,
    database_path,
)


def test_queue_shows_answers_blind_and_in_order(review_run):
    with ReviewStore.open(review_run) as store:
        assert store.reviewers == ["ann", "bob"] and store.rubric == ["correct", "helpful", "fluent"]
        first = store.next_item("ann")
        assert (first.position, first.total, first.prompt, first.system) == (1, 4, "question 0", None)
        assert {first.answer_a, first.answer_b} == {"tuned says 0", "base says 0"}
        assert first.reference is None  # hidden unless the review was created with it visible
        assert "tuned" not in repr(first).replace("tuned says", "")  # no model name besides the answer text
        bob_first = store.item("bob", first.item_id)
        assert (bob_first.answer_a, bob_first.answer_b) == (first.answer_b, first.answer_a)
        assert store.item("ann", store.queue("ann")[1][0]).system == "Be brief."


def test_reference_shown_when_asked(make_review):
    with ReviewStore.open(make_review(show_reference=True)) as store:
        assert store.next_item("ann").reference == "answer 0"


def test_judge_advances_and_undo_goes_back(review_run):
    with ReviewStore.open(review_run) as store:
        first = store.next_item("ann")
        store.judge("ann", first.item_id, "a", "A is right", scores_a={"correct": 5}, scores_b={"correct": 2})
        assert store.progress("ann") == (1, 4) and store.progress("bob") == (0, 4)
        second = store.next_item("ann")
        assert second.position == 2
        store.judge("ann", second.item_id, "tie")
        assert store.undo("ann") == second.item_id
        assert store.next_item("ann").item_id == second.item_id
        assert store.undo("ann") == first.item_id
        assert store.progress("ann") == (0, 4)
        with pytest.raises(ReviewConflict, match="no judgment to undo") as caught:
            store.undo("ann")
        assert caught.value.status == 409


def test_queue_ends_with_none(review_run):
    with ReviewStore.open(review_run) as store:
        while (item := store.next_item("bob")) is not None:
            store.judge("bob", item.item_id, "both_bad")
        assert store.progress("bob") == (4, 4)


@pytest.mark.parametrize("call, error, status, message", [
    (lambda s: s.judge("ann", 1, "a"), ReviewConflict, 409, "judged item 1 already"),
    (lambda s: s.judge("ann", 99, "a"), ReviewNotFound, 404, "item 99 is not in ann's queue"),
    (lambda s: s.judge("zoe", 1, "a"), ReviewNotFound, 404, "unknown reviewer 'zoe'"),
    (lambda s: s.item("ann", 99), ReviewNotFound, 404, "item 99"),
    (lambda s: s.next_item("zoe"), ReviewNotFound, 404, "reviewers: ann, bob"),
    (lambda s: s.judge("ann", 2, "A"), ReviewError, 400, "verdict 'A' is not one of a, b, tie, both_bad"),
    (lambda s: s.judge("ann", 2, "a", scores_a={"witty": 3}), ReviewError, 400, "'witty' is not in the rubric"),
    (lambda s: s.judge("ann", 2, "a", scores_b={"correct": 6}), ReviewError, 400, "correct must be a whole number"),
    (lambda s: s.judge("ann", 2, "a", scores_b={"correct": True}), ReviewError, 400, "got True"),
])
def test_errors_carry_http_status(review_run, call, error, status, message):
    with ReviewStore.open(review_run) as store:
        store.judge("ann", 1, "a")
        with pytest.raises(error, match=message) as caught:
            call(store)
        assert type(caught.value) is error and caught.value.status == status
        assert store.progress("ann") == (1, 4)  # nothing half-written


def test_open_without_review(tmp_path):
    assert not ReviewStore.exists(tmp_path)
    with pytest.raises(ReviewNotFound, match="has no review") as caught:
        ReviewStore.open(tmp_path)
    assert caught.value.status == 404


def test_judgments_map_back_to_models_despite_sides(review_run):
    with ReviewStore.open(review_run) as store:
        for reviewer in ("ann", "bob"):
            for item_id, model_a, model_b in store.queue(reviewer):
                shown = store.item(reviewer, item_id)
                assert shown.answer_a.startswith(model_a) and shown.answer_b.startswith(model_b)
                # Pick whichever side shows the tuned model's answer, and score it 5.
                side = "a" if shown.answer_a.startswith("tuned") else "b"
                store.judge(reviewer, item_id, side, scores_a={"correct": 5 if side == "a" else 1},
                            scores_b={"correct": 5 if side == "b" else 1})
        judgments = store.judgments()
    assert len(judgments) == 8
    sides = {(judgment.model_a, judgment.verdict) for judgment in judgments}
    assert sides == {("tuned", "a"), ("base", "b")}  # both orders occurred, and each maps back to the tuned model
    assert all(judgment.winner == "tuned" for judgment in judgments)
    assert all(judgment.scores_of("tuned") == {"correct": 5} and judgment.scores_of("base") == {"correct": 1}
               for judgment in judgments)


def test_threads_cannot_double_submit(review_run):
    """The UI server calls from several threads: of many simultaneous submissions of one item exactly one wins."""
    outcomes = []
    with ReviewStore.open(review_run) as store:
        def submit():
            try:
                store.judge("ann", 1, "a")
                outcomes.append("stored")
            except ReviewConflict:
                outcomes.append("conflict")

        threads = [threading.Thread(target=submit) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(outcomes) == ["conflict"] * 7 + ["stored"]
        assert len(store.judgments()) == 1


_JUDGE_THEN_HANG = """
import sys, time
from tunesmith.review.store import ReviewStore
store = ReviewStore.open(sys.argv[1])
item = store.next_item("ann")
store.judge("ann", item.item_id, "b", "kept")
print(item.item_id, flush=True)
time.sleep(60)
"""


def test_judgment_survives_sigkill(review_run):
    """A judgment returned by `judge` is on disk: another process reads it after the writer is SIGKILLed (no close)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    writer = subprocess.Popen([sys.executable, "-c", _JUDGE_THEN_HANG, str(review_run)], stdout=subprocess.PIPE,
                              text=True, env=env)
    try:
        item_id = int(writer.stdout.readline())
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    with ReviewStore.open(review_run) as store:
        [judgment] = store.judgments()
        assert (judgment.item_id, judgment.verdict, judgment.comment) == (item_id, "b", "kept")
        assert store.next_item("ann").position == 2


def test_add_reviewer(review_run):
    with ReviewStore.open(review_run) as store:
        store.add_reviewer("judge:big", "judge", [(2, "base", "tuned"), (1, "tuned", "base")])
        assert store.judges == ["judge:big"] and store.reviewers == ["ann", "bob"]
        assert store.next_item("judge:big").item_id == 2
        with pytest.raises(ReviewConflict, match="exists already"):
            store.add_reviewer("ann", "human", [])


def test_verdict_order_is_the_ui_keys():
    assert VERDICTS == ("a", "b", "tie", "both_bad")


def test_a_file_that_is_no_review_is_a_one_line_error(tmp_path):
    path = database_path(tmp_path)
    path.parent.mkdir()
    path.write_text("not a database, just text " * 100)
    with pytest.raises(RunError, match="cannot be read as a review database"):
        ReviewStore.open(tmp_path)
