"""Reviewer-only mode (`tunesmith ui --reviewer-only`, `UiSettings.reviewer_only`): the UI for the people doing a
blind review, serving the review pages and nothing else.

Why a mode and not only careful review pages: the review pages name no model, but everything else in the UI does.
A run's page shows the review's results with every reviewer's named verdicts, predictions.jsonl pairs each answer
with its model, and compare and the playground show what each model says, so a reviewer two clicks away from their
queue could de-blind every item. In this mode those routes answer 403 and the pages' navigation leads only to the
reviews; ``/`` goes to the list of reviews. It is a guard on paths, before any route runs, so a route added later
stays closed unless it is listed here.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse

from tunesmith.ui.pages import render_error
from tunesmith.web import HttpError

REVIEW_PAGES = "/review"
OPEN_PREFIXES = ("/review/", "/static/")
OPEN_PATHS = {REVIEW_PAGES, "/api/review/judge", "/api/review/undo"}
CLOSED = ("not available: this UI runs in reviewer-only mode (tunesmith ui --reviewer-only), which serves the blind "
          "review only (/review/)")


def is_open(path: str) -> bool:
    """Whether reviewer-only mode serves ``path``: the review pages, their two API calls and the static files.
    Request paths reach the routes as they are here (no ``..`` resolution), so a path under /review/ can only
    reach the review routes, which look names up and never join them onto a folder."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


async def reviewer_only_guard(request: Request, call_next):
    """The middleware `tunesmith.ui.app` installs: a no-op unless the app's settings ask for reviewer-only mode."""
    if not request.app.state.settings.reviewer_only:
        return await call_next(request)
    path = request.url.path
    if path == "/":  # the query kept: the link `tunesmith ui` prints carries the token there
        query = request.url.query
        return RedirectResponse(f"{REVIEW_PAGES}/" + (f"?{query}" if query else ""), status_code=303)
    if is_open(path):
        return await call_next(request)
    return render_error(request, HttpError(403, CLOSED))
