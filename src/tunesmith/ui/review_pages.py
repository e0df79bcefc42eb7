"""The blind review pages over a run's review database (`tunesmith.review.ReviewStore`).

``/review/<run>`` lists the reviewers with their progress; ``/review/<run>/<reviewer>`` shows that reviewer's next
unjudged item: the prompt and answers A and B (sides chosen per item and reviewer by the store; model names never
reach the page), verdict buttons (keys 1-4), an optional comment and rubric scores, a progress bar and undo
(key u). Where a reviewer stands lives in the database, so a reload (or another browser) resumes at the next
unjudged item; the page holds no state of its own. Judging and undoing are POSTs of JSON with the session's
CSRF token (`tunesmith.ui.security`); the store's errors keep their status: 404 unknown reviewer or item, 409 a
second judgment of one item or nothing to undo, 400 a bad verdict or score.

The store is opened per request and closed after it: SQLite opens in microseconds, and a judgment is committed
before its response is sent, so a server killed between requests loses nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from tunesmith.review import VERDICTS, ReviewNotFound, ReviewStore
from tunesmith.text import preview
from tunesmith.ui.pages import Settings, UiSettings, find_run, render
from tunesmith.ui.runs import find_runs

VERDICT_LABELS = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both bad"}
"""What the buttons say, in the store's order (keys 1-4)."""


class JudgmentRequest(BaseModel):
    run: str = Field(max_length=1_000)
    reviewer: str = Field(max_length=1_000)
    item_id: int
    verdict: str
    comment: str = Field("", max_length=10_000)
    scores_a: dict[str, int] = {}
    scores_b: dict[str, int] = {}


class UndoRequest(BaseModel):
    run: str = Field(max_length=1_000)
    reviewer: str = Field(max_length=1_000)


def store_of(settings: UiSettings, run_name: str) -> ReviewStore:
    return ReviewStore.open(find_run(settings, run_name).root)


def check_human(store: ReviewStore, reviewer: str) -> None:
    """Judge models (`tunesmith review judge`) have queues too, but nobody judges in their name here."""
    if reviewer not in store.reviewers:
        known = ", ".join(store.reviewers) or "none"
        raise ReviewNotFound(f"unknown reviewer {preview(reviewer)} (reviewers: {known})")


router = APIRouter()


@router.get("/review/{path:path}")
def review_page(request: Request, path: str, settings: Settings):
    # A run's name may hold slashes (a sweep's trials): a known run is the reviewers page, otherwise the last
    # part names the reviewer.
    path = path.strip("/")
    if path in find_runs(settings.runs_dir):
        with store_of(settings, path) as store:
            progress = {reviewer: store.progress(reviewer) for reviewer in store.reviewers}
        return render(request, "review_list.html", run=path, progress=progress)
    run, _, reviewer = path.rpartition("/")
    if not run:
        find_run(settings, path)  # the 404 names the run
    with store_of(settings, run) as store:
        check_human(store, reviewer)
        item = store.next_item(reviewer)
        judged, total = store.progress(reviewer)
        rubric = store.rubric
    return render(request, "review.html", run=run, reviewer=reviewer, item=item, judged=judged, total=total,
                  rubric=rubric, verdicts=[(verdict, VERDICT_LABELS[verdict]) for verdict in VERDICTS])


@router.post("/api/review/judge")
def judge(body: JudgmentRequest, settings: Settings):
    with store_of(settings, body.run) as store:
        check_human(store, body.reviewer)
        store.judge(body.reviewer, body.item_id, body.verdict, body.comment, body.scores_a, body.scores_b)
        judged, total = store.progress(body.reviewer)
        following = store.next_item(body.reviewer)
    return {"judged": judged, "total": total, "next_item": following.item_id if following else None}


@router.post("/api/review/undo")
def undo(body: UndoRequest, settings: Settings):
    with store_of(settings, body.run) as store:
        check_human(store, body.reviewer)
        item_id = store.undo(body.reviewer)
        judged, total = store.progress(body.reviewer)
    return {"undone": item_id, "judged": judged, "total": total}
