"""The run report's section on retrieval, for a run whose `rag` section changed its rows: what was retrieved, how
the training prompts were built (RAFT), what did not fit `data.max_length`, and the retriever's recall and MRR on
the test questions (from the run's `rag/summary.json`)."""

from __future__ import annotations

from tunesmith.document import Facts, Section, Table, plain

_PROMPT_SETS = (("train_prompts", "training"), ("validation_prompts", "validation"), ("test_prompts", "test"))


def rag_section(summary: dict | None) -> Section | None:
    """None for a run without `rag` rows."""
    if summary is None:
        return None
    facts = [("retriever", f"{summary['retriever']}, top {summary['top_k']}"),
             ("passages in the index", plain(summary["passages"]))]
    if "documents_added" in summary:
        facts.append(("documents added as training rows", plain(summary["documents_added"])))
    raft = summary.get("raft")
    if raft:
        facts += [("training prompts with the gold passage retrieved", plain(raft["gold_retrieved"])),
                  ("gold passage mixed in (rag.gold_mix)", plain(raft["gold_mixed_in"])),
                  ("distractors only", plain(raft["distractors_only"]))]
    blocks: list = [Facts(facts)]
    fitted = [(label, summary[key]) for key, label in _PROMPT_SETS if key in summary]
    if fitted:
        blocks.append(Table(
            ["prompts", "rows", "passages shown", "cut to fit", "left out", "rows that lost context"],
            [[label, plain(fit["rows"]), plain(fit["passages_shown"]), plain(fit["passages_cut"]),
              plain(fit["passages_dropped"]), plain(fit["rows_short"])] for label, fit in fitted],
            caption="Passages fitted to data.max_length"))
    retrieval = summary.get("test_retrieval")
    if retrieval:
        recalls = [name for name in next(iter(retrieval.values())) if name.startswith("recall@")]
        blocks.append(Table(["retriever", *recalls, "MRR", "questions"],
                            [[name, *(plain(values[recall]) for recall in recalls), plain(values["mrr"]),
                              plain(values["questions"])] for name, values in retrieval.items()],
                            caption="Retrieval on the test questions (gold document from rag.gold_column)"))
    return Section("Retrieval", blocks)
