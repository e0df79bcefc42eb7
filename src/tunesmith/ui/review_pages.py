"""The blind review pages over a run's review database (`tunesmith.review.ReviewStore`).

``/review/<run>`` lists the reviewers with their progress; ``/review/<run>/<reviewer>`` shows that reviewer's next
unjudged item: the prompt and answers A and B (sides chosen per item and reviewer by the store; model names never
reach the page), verdict buttons (keys 1-4), an optional comment and rubric scores, a progress bar and undo
(key u). Where a reviewer stands lives in the database, so a reload (or another browser) resumes at the next
unjudged item; the page holds no state of its own. Judging and undoing are POSTs of JSON with the session's
CSRF token (`tunesmith.ui.security`); the store's errors keep their status: 404 unknown reviewer or item, 409 a
second judgment of one item or nothing to undo, 400 a bad verdict or score. A 409 comes from a stale page (the
item was judged, or the verdict undone, in another tab), so its message says to reload, which shows where the
reviewer really stands. After a verdict the page loads with ``?saved=<item>`` and confirms what the database
holds ("Saved: A better (item 12)"), after an undo with ``?undone=<item>``.

``/review/`` lists the runs that have a review. Nothing on these pages links to a run's page, its files
(predictions.jsonl names every model's answer) or its results: those would de-blind the review. With
``--reviewer-only`` (`tunesmith.ui.reviewer_only`) the rest of the UI is closed as well.

The store is opened per request and closed after it: SQLite opens in microseconds, and a judgment is committed
before its response is sent, so a server killed between requests loses nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from tunesmith.review import VERDICTS, ReviewConflict, ReviewNotFound, ReviewStore
from tunesmith.text import preview
from tunesmith.ui.pages import Settings, UiSettings, find_run, render
from tunesmith.ui.runs import find_runs

VERDICT_LABELS = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both bad"}
"""What the buttons say, in the store's order (keys 1-4)."""
VERDICT_SAVED = {"a": "A better", "b": "B better", "tie": "tie", "both_bad": "both bad"}
"""A stored verdict in the confirmation ("Saved: A better (item 12)"): the sides as this reviewer saw them."""
RELOAD = "reload the page: it shows where you stand"


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


@router.get("/review")
def reviews_page(request: Request, settings: Settings):
    """The runs with a review, by name only: where a reviewer starts (and where reviewer-only mode sends ``/``)."""
    runs = [name for name, run in find_runs(settings.runs_dir).items() if ReviewStore.exists(run.root)]
    return render(request, "review_index.html", runs=runs)


@router.get("/review/{path:path}")
def review_page(request: Request, path: str, settings: Settings, saved: int | None = None,
                undone: int | None = None):
    # A run's name may hold slashes (a sweep's trials): a known run is the reviewers page, otherwise the last
    # part names the reviewer.
    path = path.strip("/")
    if not path:
        return reviews_page(request, settings)
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
        confirmation = confirmation_of(store, reviewer, saved, undone)
    return render(request, "review.html", run=run, reviewer=reviewer, item=item, judged=judged, total=total,
                  rubric=rubric, verdicts=[(verdict, VERDICT_LABELS[verdict]) for verdict in VERDICTS],
                  confirmation=confirmation)


def confirmation_of(store: ReviewStore, reviewer: str, saved: int | None, undone: int | None) -> str | None:
    """"Saved: A better (item 12)" from what the database holds for the item just judged (nothing when it holds
    no such verdict: undone since, or a hand-made URL); "Undone: ..." after an undo. Items are numbered as the
    page shows them: their place in this reviewer's queue."""
    item_id = saved if saved is not None else undone
    if item_id is None:
        return None
    try:
        position = store.item(reviewer, item_id).position
    except ReviewNotFound:
        return None
    if undone is not None:
        return f"Undone: your verdict on item {position} is removed; judge it again below."
    verdict = next((judgment.verdict for judgment in store.judgments()
                    if judgment.reviewer == reviewer and judgment.item_id == item_id), None)
    return f"Saved: {VERDICT_SAVED[verdict]} (item {position})" if verdict else None


@router.post("/api/review/judge")
def judge(body: JudgmentRequest, settings: Settings):
    with store_of(settings, body.run) as store:
        check_human(store, body.reviewer)
        try:
            store.judge(body.reviewer, body.item_id, body.verdict, body.comment, body.scores_a, body.scores_b)
        except ReviewConflict:
            # The page was stale: the item was judged in another tab (undo there would change that verdict,
            # not this page).
            position = store.item(body.reviewer, body.item_id).position
            raise ReviewConflict(f"Item {position} was judged already, in another tab or window", RELOAD) from None
        judged, total = store.progress(body.reviewer)
        following = store.next_item(body.reviewer)
    return {"judged": judged, "total": total, "next_item": following.item_id if following else None}


@router.post("/api/review/undo")
def undo(body: UndoRequest, settings: Settings):
    with store_of(settings, body.run) as store:
        check_human(store, body.reviewer)
        try:
            item_id = store.undo(body.reviewer)
        except ReviewConflict:
            raise ReviewConflict("Nothing to undo: no verdict of yours is stored (undone in another tab or window?)",
                                 RELOAD) from None
        judged, total = store.progress(body.reviewer)
    return {"undone": item_id, "judged": judged, "total": total}
