"""`tunesmith ui`: a local web app over a folder of runs (FastAPI + uvicorn, the stack of `tunesmith serve`).

Pages: the runs table (``/``) and several runs compared (``/compare?runs=a,b``), `tunesmith.ui.runs_table`; a run
(``/runs/<name>``: live curves, data report, evaluation, config), the playground (``/playground?run=<name>``,
`tunesmith.ui.playground`) and the
blind review (``/review/<run>``, `tunesmith.ui.review_pages`) and the labeling queues (``/label/<run>``,
`tunesmith.ui.label_pages`). JSON under ``/api/``. Errors are a page (or JSON
under /api/) with a 4xx status, never a traceback. Access rules: `tunesmith.ui.security` (the token, CSRF) and
`tunesmith.web.AllowedHosts` (the Host and Origin headers); every response carries the security headers of
`tunesmith.web.headers` (the pages' Content-Security-Policy allows no inline script or style: every script and
stylesheet is a file under ``/static/``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from tunesmith.errors import RunError
from tunesmith.ui.label_pages import router as label_routes
from tunesmith.ui.pages import PACKAGE, Settings, UiSettings, find_run, render_error
from tunesmith.ui.playground import Playground
from tunesmith.ui.playground import router as playground_routes
from tunesmith.ui.review_pages import router as review_routes
from tunesmith.ui.reviewer_only import reviewer_only_guard
from tunesmith.ui.run_page import run_page
from tunesmith.ui.runs import (
    curves,
    find_runs,
    progress_note,
    run_status,
)
from tunesmith.ui.runs_table import router as runs_table_routes
from tunesmith.ui.security import UI_BIND, check_csrf, check_token, session_csrf, set_csrf
from tunesmith.web import (
    PAGE_POLICY,
    REPORT_POLICY,
    AllowedHosts,
    BodyLimit,
    HostCheck,
    HttpError,
    check_port,
    install_error_handlers,
    install_security_headers,
)

log = logging.getLogger("tunesmith")

_TEXT = "text/plain; charset=utf-8"
RUN_FILES = {"report.html": "text/html; charset=utf-8", "report.md": _TEXT, "predictions.jsonl": _TEXT,
             "eval.json": "application/json", "data_summary.json": "application/json", "config.yaml": _TEXT,
             "metrics.jsonl": _TEXT}
"""The files of a run the UI serves as they are (report.html is tunesmith's own self-contained page). Each is sent
with `REPORT_POLICY`: the report's inline styles and plots show, and nothing in any of them runs as a script."""


def create_ui_app(settings: UiSettings) -> FastAPI:
    hosts = AllowedHosts.of(settings.host, settings.allowed_hosts)
    app = FastAPI(title="tunesmith ui", lifespan=_lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.playground = Playground()
    app.mount("/static", StaticFiles(directory=PACKAGE / "static"), name="static")
    install_error_handlers(app, render_error, validation_status=422)  # FastAPI's status for a body it refused
    app.include_router(runs_table_routes)
    app.include_router(router)
    app.include_router(playground_routes)
    app.include_router(review_routes)
    app.include_router(label_routes)
    app.middleware("http")(_guard)
    app.middleware("http")(reviewer_only_guard)  # outside the token check: a closed path is closed to everyone
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes, render=render_error)
    app.add_middleware(HostCheck, hosts=hosts, render=render_error)  # outermost: a foreign Host reaches nothing
    install_security_headers(app, PAGE_POLICY)
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    app.state.playground.close()


async def _guard(request: Request, call_next):
    """The token (when set) and the CSRF check before any route; a new session gets its CSRF cookie."""
    token = request.app.state.settings.token
    if token and (refused := check_token(request, token)) is not None:
        return refused
    if (refused := check_csrf(request)) is not None:
        return refused
    request.state.csrf, new = session_csrf(request)
    response = await call_next(request)
    if new:
        set_csrf(response, request.state.csrf)
    return response


router = APIRouter()
"""The runs' pages and their JSON. They are plain functions (not async): FastAPI runs them on worker threads, so
reading run folders never stalls the event loop that streams playground answers."""


@router.get("/api/curves/{name:path}")
def curves_json(name: str, settings: Settings):
    run = find_run(settings, name)
    status = run_status(run)
    return {"name": name, "status": status, "series": curves(run), "note": progress_note(run, status)}


@router.get("/runs/{path:path}")
def run_page_or_file(request: Request, path: str, settings: Settings):
    # One route for both: a run's name may hold slashes (a sweep's trials), so only the last part can say
    # whether a file of the run is meant.
    name, _, file = path.rpartition("/")
    if file in RUN_FILES and name in find_runs(settings.runs_dir):
        run = find_run(settings, name)
        if not (run.root / file).is_file():
            raise HttpError(404, f"{name} has no {file} yet")
        return FileResponse(run.root / file, media_type=RUN_FILES[file],
                            headers={"Content-Security-Policy": REPORT_POLICY})
    return run_page(request, settings, path, list(RUN_FILES))


def serve_ui(settings: UiSettings) -> int:
    """Serve the UI until Ctrl-C or SIGTERM; refuses a non-loopback address without a token."""
    import uvicorn

    UI_BIND.check(settings.host, settings.token)
    if not settings.runs_dir.is_dir():
        raise RunError(f"{settings.runs_dir} is not a folder", "give the folder your runs are in (default: runs)")
    check_port(settings.host, settings.port)
    link = f"http://{settings.host}:{settings.port}/" + (f"?token={settings.token}" if settings.token else "")
    log.info("tunesmith ui: %s (runs in %s)", link, settings.runs_dir)
    uvicorn.run(create_ui_app(settings), host=settings.host, port=settings.port, log_level="warning")
    return 0
