"""Annotator counts, agreement (Cohen for two, Fleiss for three or more) and agreement with the teacher, each with
the number of items it rests on."""

from __future__ import annotations

import pytest

from tunesmith.label.stats import label_stats, render_stats
from tunesmith.review.stats import cohen_kappa, fleiss_kappa


def annotate(queue, annotator: str, values: list[str | None]) -> None:
    for item_id, value in enumerate(values, start=1):
        if value == "skip":
            queue.annotate(item_id, annotator, None, skipped=True)
        elif value is not None:
            queue.annotate(item_id, annotator, value)


def test_counts_and_cohen_kappa_for_two(make_queue):
    queue = make_queue(6)
    annotate(queue, "ann", ["spam", "spam", "ham", "ham", "spam", "skip"])
    annotate(queue, "bob", ["spam", "ham", "ham", "ham", None, "ham"])
    stats = label_stats(queue)
    assert stats["items"] == 6
    assert stats["annotators"] == {"ann": {"labeled": 5, "skipped": 1}, "bob": {"labeled": 5, "skipped": 0}}
    agreement = stats["agreement"]
    # Shared labelled items: 1..4 (ann skipped 6, bob left 5).
    assert (agreement["method"], agreement["items"], agreement["observed"]) == ("cohen", 4, 0.75)
    assert agreement["kappa"] == pytest.approx(cohen_kappa(["spam", "spam", "ham", "ham"],
                                                           ["spam", "ham", "ham", "ham"]))
    low, high = agreement["observed_interval"]
    assert low < 0.75 < high
    assert stats["teacher"] is None
    assert "75% agree" in render_stats(stats) and "on 4 items, kappa 0.50 (cohen)" in render_stats(stats)


def test_fleiss_kappa_for_three(make_queue):
    queue = make_queue(4)
    annotate(queue, "ann", ["spam", "ham", "ham", "spam"])
    annotate(queue, "bob", ["spam", "ham", "spam", "spam"])
    annotate(queue, "cid", ["spam", "ham", "ham", None])
    agreement = label_stats(queue)["agreement"]
    assert (agreement["method"], agreement["items"]) == ("fleiss", 3)
    assert agreement["kappa"] == pytest.approx(fleiss_kappa([["spam"] * 3, ["ham"] * 3, ["ham", "spam", "ham"]]))


def test_one_annotator_has_no_agreement(make_queue):
    queue = make_queue(2)
    annotate(queue, "ann", ["spam", "ham"])
    agreement = label_stats(queue)["agreement"]
    assert agreement["kappa"] is None and agreement["items"] == 0 and "two or more" in agreement["note"]
    assert "nobody has annotated yet" in render_stats(label_stats(make_queue(1, path=queue.path.with_name("b.db"))))


def test_agreement_with_the_teacher(make_queue):
    queue = make_queue(4, teacher=["spam", "ham", "ham", None])
    annotate(queue, "ann", ["spam", "ham", "spam", "spam"])
    annotate(queue, "bob", ["spam", None, None, None])
    teacher = label_stats(queue)["teacher"]
    assert (teacher["model"], teacher["suggestions"], teacher["errors"]) == ("teacher", 3, 0)
    ann = teacher["agreement"]["ann"]
    assert (ann["items"], ann["observed"]) == (3, pytest.approx(2 / 3))
    assert ann["kappa"] == pytest.approx(cohen_kappa(["spam", "ham", "spam"], ["spam", "ham", "ham"]))
    assert teacher["agreement"]["bob"]["items"] == 1 and teacher["agreement"]["bob"]["kappa"] is None


def test_generation_agreement_is_identical_answers(make_queue):
    queue = make_queue(3, task="generation", labels=None)
    annotate(queue, "ann", ["Paris.", "Two", "blue"])
    annotate(queue, "bob", ["paris.", "2", "Blue"])
    agreement = label_stats(queue)["agreement"]
    assert (agreement["method"], agreement["kappa"], agreement["items"]) == ("identical answers", None, 3)
    assert agreement["observed"] == pytest.approx(2 / 3)
