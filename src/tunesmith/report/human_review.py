"""The report's "Human review" section: the statistics of the run's blind review (`tunesmith.review`), shown once
someone (or a judge model) has judged an item."""

from __future__ import annotations

from tunesmith.document import Section, Text
from tunesmith.review.stats import review_stats
from tunesmith.review.store import ReviewStore
from tunesmith.review.summary import stats_blocks
from tunesmith.run_dir import RunDir

TITLE = "Human review"


def human_review_section(run: RunDir) -> Section | None:
    """The section, or None when the run has no review or no judgment yet."""
    if not ReviewStore.exists(run.root):
        return None
    with ReviewStore.open(run.root) as store:
        if not store.judgments():
            return None
        stats = review_stats(store)
    intro = Text("Blind A/B review of the tuned model's answers (`tunesmith review`): reviewers saw two answers to "
                 "each test prompt with the models hidden and the sides randomized.")
    return Section(TITLE, [intro, *stats_blocks(stats)])
