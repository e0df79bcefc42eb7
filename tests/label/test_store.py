import re
import sqlite3

import pytest

from tunesmith.label.store import (
    MAX_ANNOTATOR_LENGTH,
    LabelConflict,
    LabelError,
    LabelNotFound,
    LabelQueue,
    queue_path,
)


def test_items_keep_their_order_and_fields(tmp_path, queue_meta):
    conversation = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    items = [{"request_id": "b", "input": "hi", "messages": conversation, "prediction": "spam", "confidence": 0.51,
              "novelty": 0.7, "reason": "least confident: 0.51", "teacher_suggestion": "ham", "teacher_error": None},
             {"request_id": "a", "input": "yo", "reason": "most novel: 0.9", "teacher_error": "timed out"}]
    with LabelQueue.create(tmp_path / "q.db", queue_meta(teacher_model="t"), items) as queue:
        first, second = queue.items()
        assert (first.id, first.position, first.request_id, first.messages) == (1, 1, "b", conversation)
        assert (first.confidence, first.novelty, first.teacher_suggestion) == (0.51, 0.7, "ham")
        assert (second.position, second.request_id, second.prediction, second.teacher_error) == (2, "a", None,
                                                                                                "timed out")
        assert queue.item(2) == second
        assert queue.meta.teacher_model == "t" and queue.meta.labels == ["ham", "spam"]
    assert LabelQueue.open(tmp_path / "q.db").items() == [first, second]


def test_next_item_skips_what_this_annotator_did(make_queue):
    queue = make_queue(3)
    assert queue.next_item("ann").id == 1
    queue.annotate(1, "ann", "spam")
    queue.annotate(2, "ann", None, skipped=True)
    assert queue.next_item("ann").id == 3 and queue.next_item("bob").id == 1
    assert queue.progress("ann") == (2, 3) and queue.progress("bob") == (0, 3)
    queue.annotate(3, "ann", "ham")
    assert queue.next_item("ann") is None


def test_a_second_annotation_conflicts_and_undo_takes_back_the_latest(make_queue):
    queue = make_queue(2)
    queue.annotate(1, "ann", "spam")
    with pytest.raises(LabelConflict, match="ann has annotated item 1 already"):
        queue.annotate(1, "ann", "ham")
    queue.annotate(2, "ann", None, skipped=True)
    undone = queue.undo("ann")
    assert (undone.item_id, undone.skipped, undone.value) == (2, True, None)
    assert queue.undo("ann").value == "spam"
    assert queue.undo("ann") is None and queue.annotations() == []
    queue.annotate(1, "ann", "ham")
    assert [(a.item_id, a.annotator, a.value) for a in queue.annotations()] == [(1, "ann", "ham")]


@pytest.mark.parametrize(("task", "value", "message"), [
    ("classification", "maybe", "'maybe' is not one of the run's labels (ham, spam)"),
    ("classification", "", "an annotation needs a value"),
    ("classification", None, "an annotation needs a value"),
    ("generation", "   ", "an annotation needs a value"),
    ("regression", "lots", "'lots' is not a number"),
    ("regression", "nan", "'nan' is not a finite number"),
])
def test_values_are_checked_against_the_task(make_queue, task, value, message):
    queue = make_queue(1, task=task, labels=("ham", "spam") if task == "classification" else None)
    with pytest.raises(LabelError, match=re.escape(message)):
        queue.annotate(1, "ann", value)
    assert queue.annotations() == []


def test_a_generation_answer_is_kept_as_written(make_queue):
    queue = make_queue(1, task="generation", labels=None)
    assert queue.annotate(1, "ann", "  Paris.\n").value == "  Paris.\n"


def test_a_skip_carries_no_value(make_queue):
    with pytest.raises(LabelError, match="a skip carries no value"):
        make_queue(1).annotate(1, "ann", "ham", skipped=True)


@pytest.mark.parametrize("name", ["", "  ", "x" * (MAX_ANNOTATOR_LENGTH + 1), "a\nb", " ann", "\x1b[31m", 7])
def test_annotator_names_are_checked(make_queue, name):
    queue = make_queue(1)
    with pytest.raises(LabelError):
        queue.annotate(1, name, "ham")
    with pytest.raises(LabelError):
        queue.next_item(name)


def test_unknown_items_and_files(make_queue, tmp_path):
    queue = make_queue(1)
    with pytest.raises(LabelNotFound, match="the queue has no item 9"):
        queue.annotate(9, "ann", "ham")
    with pytest.raises(LabelNotFound, match="the queue has no item 9"):
        queue.item(9)
    with pytest.raises(LabelNotFound, match="missing.db does not exist"):
        LabelQueue.open(tmp_path / "missing.db")


def test_a_file_that_is_not_a_queue_is_named(tmp_path):
    (tmp_path / "text.db").write_text("not a database", encoding="utf-8")
    with pytest.raises(LabelError, match=r"text.db is not a labeling queue \(file is not a database\)"):
        LabelQueue.open(tmp_path / "text.db")
    other = sqlite3.connect(tmp_path / "other.db")
    other.execute("CREATE TABLE meta (key TEXT, value TEXT)")
    other.commit()
    other.close()
    with pytest.raises(LabelError, match="other.db is not a labeling queue"):
        LabelQueue.open(tmp_path / "other.db")


def test_an_existing_queue_is_replaced_only_when_asked(make_queue, tmp_path):
    make_queue(2).annotate(1, "ann", "ham")
    with pytest.raises(LabelConflict, match="exists already"):
        make_queue(1)
    assert len(LabelQueue.open(tmp_path / "queue.db").annotations()) == 1
    replaced = LabelQueue.create(tmp_path / "queue.db", LabelQueue.open(tmp_path / "queue.db").meta, [],
                                 overwrite=True)
    assert replaced.items() == [] and replaced.annotations() == []
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_the_default_path_is_in_the_run_folder(tmp_path):
    assert queue_path(tmp_path / "run") == tmp_path / "run" / "labeling" / "queue.db"
