"""The report's "Human review" section: the statistics of the run's blind review (`tunesmith.review`), shown once
someone (or a judge model) has judged an item."""

from __future__ import annotations

from tunesmith.document import Section, Text
from tunesmith.review.stats import review_stats
from tunesmith.review.store import ReviewStore
from tunesmith.review.summary import rate_text, stats_blocks
from tunesmith.run_dir import RunDir

TITLE = "Human review"


def human_review_section(run: RunDir, init_from_label: str | None = None) -> Section | None:
    """The section, or None when the run has no review or no judgment yet. ``init_from_label`` names the model of the
    run this run continues from (`model.init_from`), which its review compares it with."""
    stats = _judged_stats(run)
    if stats is None:
        return None
    intro = Text("Blind A/B review of the tuned model's answers (`tunesmith review`): reviewers saw two answers to "
                 "each test prompt with the models hidden and the sides randomized.")
    blocks = [intro]
    if init_from_label:
        blocks.append(Text(f"This run continues from the {init_from_label}: its review compares the two on held-out "
                           "prompts (`tunesmith review create RUN`, whose default `--against base` is that run)."))
    blocks += [Text(f"Judge {judge} against {row['against']}: win rate {rate_text(row)}.")
               for judge, row in judge_rows(run, stats) if row["items"]]
    return Section(TITLE, [*blocks, *stats_blocks(stats)])


def judge_rows(run: RunDir, stats: dict | None = None) -> list[tuple[str, dict]]:
    """``(judge, comparison row)`` of every judge model of the run's review (`tunesmith.review.stats`: ``against``,
    ``wins``, ``losses``, ``ties``, ``win_rate``, ``win_interval``...); empty without a judged review."""
    stats = stats if stats is not None else _judged_stats(run)
    if stats is None:
        return []
    return [(judge, row) for judge, entry in stats["judges"].items() for row in entry["comparisons"]]


def _judged_stats(run: RunDir) -> dict | None:
    if not ReviewStore.exists(run.root):
        return None
    with ReviewStore.open(run.root) as store:
        if not store.judgments():
            return None
        return review_stats(store)
