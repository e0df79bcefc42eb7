"""Retrieval quality where gold documents are known: recall@k (the share of questions with a passage of their gold
document among the first k) and MRR (the mean of 1 / the rank of the first such passage; 0 when none is
retrieved within the ranking's depth)."""

from __future__ import annotations

from collections.abc import Iterable

from tunesmith.retrieval.index import Hit


def first_gold_rank(hits: list[Hit], gold: str) -> int | None:
    return next((hit.rank for hit in hits if hit.passage.document_id == gold), None)


def recall_depths(top_k: int) -> list[int]:
    """The k of each recall@k reported: 1, the configured `rag.top_k`, 5 and 10 (the usual cut-offs, so that
    retrievers and configs compare across runs)."""
    return sorted({1, top_k, 5, 10})


def retrieval_metrics(rankings: list[list[Hit]], golds: list[str], ks: Iterable[int]) -> dict:
    """``{"recall@k": ... for each k in ks, "mrr": ..., "questions": n}`` over the questions; ``rankings`` should
    be at least as deep as the largest k (MRR counts every rank they hold)."""
    if len(rankings) != len(golds):
        raise ValueError(f"{len(rankings)} rankings but {len(golds)} gold documents")
    ks = sorted(set(ks))
    if not golds:
        return {**{f"recall@{k}": None for k in ks}, "mrr": None, "questions": 0}
    ranks = [first_gold_rank(hits, gold) for hits, gold in zip(rankings, golds)]
    return {
        **{f"recall@{k}": sum(rank is not None and rank <= k for rank in ranks) / len(ranks) for k in ks},
        "mrr": sum(1.0 / rank for rank in ranks if rank is not None) / len(ranks),
        "questions": len(ranks),
    }
