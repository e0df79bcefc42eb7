"""recall@k and MRR from rankings with known gold documents."""

import pytest

from tunesmith.retrieval.chunking import Passage
from tunesmith.retrieval.index import Hit
from tunesmith.retrieval.metrics import recall_depths, retrieval_metrics


def _ranking(*documents):
    return [Hit(Passage(document, "", "", 0, 0, 0), 1.0, rank) for rank, document in enumerate(documents, 1)]


def test_recall_at_k_and_mrr_by_hand():
    rankings = [_ranking("a", "b", "c"), _ranking("x", "b", "c"), _ranking("x", "y", "c"), _ranking("x", "y", "z")]
    metrics = retrieval_metrics(rankings, ["a", "b", "c", "c"], ks=[1, 2, 3])
    assert [metrics[f"recall@{k}"] for k in (1, 2, 3)] == pytest.approx([1 / 4, 2 / 4, 3 / 4])
    assert metrics["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 0) / 4)
    assert metrics["questions"] == 4
    assert retrieval_metrics([], [], [5]) == {"recall@5": None, "mrr": None, "questions": 0}
    assert recall_depths(2) == [1, 2, 5, 10] and recall_depths(5) == [1, 5, 10]
