"""`tunesmith serve`: an OpenAI-compatible HTTP server (FastAPI + uvicorn) over the batching engine.

Routes: ``POST /v1/chat/completions`` and ``/v1/completions`` (streamed over server-sent events or not),
``GET /v1/models``, ``POST /v1/classify`` (label and every label's probability, by evaluation's label scoring),
``POST /v1/feedback``; ``GET /health`` (the process is up), ``/ready`` (the model is loaded) and ``/metrics``
(Prometheus), ``POST /admin/reload``. The model loads in the background after the port opens, so probes can tell
"starting" from "dead"; a load that fails, for any reason (a damaged run, a read-only disk under the request log,
an unexpected exception), turns ``/ready`` to ``failed`` with the reason, and the command exits 2.

Hot-swap: ``POST /admin/reload``, or the marker of ``--watch`` (`tunesmith.promotion`) pointing at another run, loads
the models anew beside those in service and switches to them at once; requests already under way finish on the old
models, which are then stopped and freed (`tunesmith.serve.deployment`). A load that fails keeps the old in service
and says why (the log, the reload's answer, ``/ready``'s ``reload_error``).

Safe by default: it binds 127.0.0.1; with an API key every route but /health and /ready needs
``Authorization: Bearer KEY``, and binding any other address without a key is refused; a request whose Host header
is not a name the server answers to is refused before anything else sees it (`tunesmith.web.AllowedHosts`). Bad
requests get an OpenAI-style JSON error with a 4xx status, never a traceback; a body larger than
``max_request_bytes`` is refused (413) before it is read (`tunesmith.web.BodyLimit`), so no request holds the
event loop with its size. SIGTERM stops accepting, lets in-flight requests finish, then exits. Every request is one
line in the request log (`tunesmith.monitor.request_log`): each answer and each failed generation (with its model),
and each refusal (a failed request to a ``/v1/`` route, a missing or wrong API key on any route, a foreign Host),
the refusals without a model and without anything of the request's headers. The routes are
`tunesmith.serve.routes`.
"""

from __future__ import annotations

import hmac
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tunesmith.config import ServeConfig
from tunesmith.errors import ConfigError, TunesmithError
from tunesmith.promotion import marked_run
from tunesmith.results.reference import read_reference
from tunesmith.run_dir import RunDir
from tunesmith.serve.openai_api import ApiError
from tunesmith.serve.prometheus import ServerMetrics
from tunesmith.serve.routes import router
from tunesmith.serve.served import EmbedderFactory, Served, load_served, sentence_embedder, serve_settings
from tunesmith.serve.state import LOG_FOLDER, ServerSettings, ServerState, load_failure
from tunesmith.threads import use_threads
from tunesmith.web import AllowedHosts, BodyLimit, HostCheck, HttpError, check_port, install_error_handlers
from tunesmith.web.bind_rules import SERVER_BIND
from tunesmith.web.headers import API_POLICY, install_security_headers

log = logging.getLogger("tunesmith")
OPEN_ROUTES = ("/health", "/ready")
"""Probes answer without the API key (they say nothing about the model or its users)."""


def create_server_app(load: Callable[[], Served], settings: ServerSettings, on_loaded: Callable[[], None] | None = None,
                      on_load_failed: Callable[[str], None] | None = None) -> FastAPI:
    """The server's app; ``load`` runs in a background thread when the app starts."""
    hosts = AllowedHosts.of(settings.host, settings.allowed_hosts)
    state = ServerState(settings, ServerMetrics(), load)
    lifespan = partial(_lifespan, on_loaded=on_loaded, on_load_failed=on_load_failed)
    app = FastAPI(title="tunesmith", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.tunesmith = state
    install_error_handlers(app, _render_error, on_failure=_log_failure)
    app.include_router(router)
    # Inside the key check: a caller without the key gets its 401 without the server reading its body.
    app.add_middleware(BodyLimit, limit=settings.max_request_bytes, render=_render_error, on_refused=_log_failure)
    app.middleware("http")(_require_key)
    state.metrics.instrument(app)  # outside the key check, so it counts the key check's 401s too
    # Outermost: a foreign Host reaches nothing (not even the metrics), but it is a line of the request log.
    app.add_middleware(HostCheck, hosts=hosts, render=_render_error, on_refused=_log_refusal)
    install_security_headers(app, API_POLICY)  # nosniff, CSP, no referrer on every answer, its 500s included
    return app


@asynccontextmanager
async def _lifespan(app: FastAPI, on_loaded: Callable[[], None] | None,
                    on_load_failed: Callable[[str], None] | None) -> AsyncIterator[None]:
    state: ServerState = app.state.tunesmith
    try:
        state.open_log()
    except TunesmithError as error:  # a log folder that cannot be written: nothing is served without its log
        _load_failed(state, on_load_failed, f"the request log cannot be opened: {error}; serve with --log-dir "
                                            "on a writable disk")
        yield
        return
    stopping = threading.Event()
    loader = threading.Thread(target=_load, args=(state, on_loaded, on_load_failed, stopping), name="tunesmith-load",
                              daemon=True)
    loader.start()
    yield
    stopping.set()
    loader.join()
    state.stop()


def _load(state: ServerState, on_loaded: Callable[[], None] | None, on_load_failed: Callable[[str], None] | None,
          stopping: threading.Event) -> None:
    """Load and start serving; then, with a marker to watch, watch it until the server stops."""
    try:
        served = state.load()
        state.start(served)
    except Exception as error:  # noqa: BLE001 - whatever it is, /ready must say failed, not loading forever
        _load_failed(state, on_load_failed, f"the model failed to load: {load_failure(error)}")
        return
    log.info("ready: serving %s", ", ".join(served.models))
    if on_loaded:
        on_loaded()
    if state.settings.watch is not None:
        _watch(state, state.settings.watch, stopping)


def _load_failed(state: ServerState, on_load_failed: Callable[[str], None] | None, message: str) -> None:
    state.load_error = message
    log.error("tunesmith: error: %s", message)
    if on_load_failed:
        on_load_failed(message)


def _watch(state: ServerState, marker: Path, stopping: threading.Event) -> None:
    """Reload whenever ``marker`` points at another run than the one in service. A run that failed to load is not
    tried again until the marker moves (``POST /admin/reload`` tries it on demand)."""
    failed: str | None = None
    while not stopping.wait(state.settings.watch_interval_s):
        target = os.path.realpath(marker)  # a link to nothing resolves to where it points
        if target in (state.ready().primary_run, failed):
            continue
        log.info("%s now points to %s: reloading", marker, target)
        try:
            state.reload("watch")
        except ApiError as error:  # logged by the reload; a reload under way (409) is followed by another look
            failed = target if error.code == "load_failed" else None
        else:
            failed = None


async def _require_key(request: Request, call_next):
    api_key = request.app.state.tunesmith.settings.api_key
    if api_key and request.url.path not in OPEN_ROUTES:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
            error = ApiError(401, "missing or wrong API key: send Authorization: Bearer KEY", "authentication_error",
                             code="invalid_api_key")
            _log_refusal(request, error)
            return _render_error(request, error)
    return await call_next(request)


def _render_error(request: Request, error: HttpError) -> JSONResponse:
    answer = ApiError.of(error)
    return JSONResponse(answer.body(), status_code=answer.status)


def _log_failure(request: Request, error: HttpError) -> None:
    """A failed API request is a line of the request log, as an answered one is (the monitor counts errors): one
    line, so not again when the request's own record (with its model) says it failed."""
    if request.url.path.startswith("/v1/") and not getattr(error, "logged", False):
        _log_refusal(request, error)


def _log_refusal(request: Request, error: HttpError) -> None:
    """A request refused at the door (a 401 of the key check, a foreign Host's 400), on any path."""
    request.app.state.tunesmith.refused(request.url.path, error.status, error.message)


def serve(targets: list[str], settings: ServerSettings, shadow: str | None = None,
          serve_overrides: list[str] = ()) -> int:
    """Serve until SIGTERM or Ctrl-C (in-flight requests finish first). The port opens at once; the model loads
    behind it (`/ready`). ``serve_overrides`` (``serve.KEY=VALUE``) apply to every served run. With
    ``settings.watch`` (a marker, the one target) the marker's run is served and swapped when the marker moves,
    and the log defaults to ``<marker>-serve_logs`` beside it (one log across promotions). Returns the exit code:
    2 when the model failed to load."""
    import uvicorn

    serve_settings(ServeConfig(), serve_overrides)  # a bad --set fails now, in one line
    SERVER_BIND.check(settings.host, settings.api_key)
    if settings.watch is not None:
        targets = _watched(targets, settings)
        settings = replace(settings, aliases=(settings.watch.name,),
                           log_dir=settings.log_dir or settings.watch.parent / f"{settings.watch.name}-{LOG_FOLDER}")
    check_port(settings.host, settings.port)
    runs = [RunDir(target) for target in [*targets, *([shadow] if shadow else [])]]
    for run in runs:
        if run.config_path.is_file():
            run.config()  # a damaged config or reference fails now, in one line, not in the background
            read_reference(run.reference)
    if settings.log_dir is None:
        first = runs[0]
        settings = replace(settings, log_dir=(first.root if first.config_path.is_file() else Path.cwd()) / LOG_FOLDER)
    failed: list[str] = []
    server: uvicorn.Server | None = None

    def stop_on_failure(message: str) -> None:
        failed.append(message)
        server.should_exit = True

    load = (marker_loader(settings.watch, shadow, serve_overrides, sentence_embedder) if settings.watch is not None
            else partial(load_served, targets, shadow, serve_overrides=serve_overrides, embedder=sentence_embedder))
    app = create_server_app(load, settings, on_load_failed=stop_on_failure)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info",
                            timeout_graceful_shutdown=int(settings.request_timeout_s))
    server = uvicorn.Server(config)
    # A server usually shares its machine (a run, a notebook): it takes the cores free now, not every core.
    log.info("request log: %s; %d CPU threads", settings.log_dir, use_threads("auto"))
    server.run()
    return 2 if failed else 0


def marker_loader(marker: Path, shadow: str | None = None, serve_overrides: list[str] = (),
                  embedder: EmbedderFactory | None = None) -> Callable[[], Served]:
    """What a server watching ``marker`` loads, each time: the run the marker points to then (read once, so the
    weights and the name come from one promotion), with ``shadow`` beside it, unless the shadow is that run: a
    promoted shadow answers, and nothing shadows it any more."""
    def load() -> Served:
        run = marked_run(marker).root
        shadowing = shadow if shadow is None or Path(shadow).resolve() != run else None
        if shadow is not None and shadowing is None:
            log.info("the shadow %s was promoted: it answers now, and nothing shadows it", run.name)
        return load_served([str(run)], shadowing, serve_overrides=serve_overrides, embedder=embedder)

    return load


def _watched(targets: list[str], settings: ServerSettings) -> list[str]:
    """The run ``--watch``'s marker points to now, checked in one line before the port opens."""
    if len(targets) != 1 or Path(targets[0]).absolute() != settings.watch.absolute():
        raise ConfigError("--watch", "watches the one marker served: tunesmith serve MARKER --watch",
                          "give the marker alone (serve other runs beside it with --shadow, or another server)")
    return [str(marked_run(settings.watch).root)]
