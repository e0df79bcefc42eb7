"""Retrieval quality where gold documents are known: recall@k (the share of questions with a passage of their gold
document among the first k) and MRR (the mean of 1 / the rank of the first such passage; 0 when none is
retrieved within the ranking's depth)."""

from __future__ import annotations

from tunesmith.retrieval.index import Hit


def first_gold_rank(hits: list[Hit], gold: str) -> int | None:
    return next((hit.rank for hit in hits if hit.passage.document_id == gold), None)


def retrieval_metrics(rankings: list[list[Hit]], golds: list[str], k: int) -> dict:
    """``{"recall@k": ..., "mrr": ..., "questions": n}`` over the questions; ``rankings`` may be deeper than k
    (MRR then counts ranks below k too)."""
    if len(rankings) != len(golds):
        raise ValueError(f"{len(rankings)} rankings but {len(golds)} gold documents")
    if not golds:
        return {f"recall@{k}": None, "mrr": None, "questions": 0}
    ranks = [first_gold_rank(hits, gold) for hits, gold in zip(rankings, golds)]
    return {
        f"recall@{k}": sum(rank is not None and rank <= k for rank in ranks) / len(ranks),
        "mrr": sum(1.0 / rank for rank in ranks if rank is not None) / len(ranks),
        "questions": len(ranks),
    }
