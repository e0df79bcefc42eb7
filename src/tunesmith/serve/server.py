"""`tunesmith serve`: an OpenAI-compatible HTTP server (FastAPI + uvicorn) over the batching engine.

Routes: ``POST /v1/chat/completions`` and ``/v1/completions`` (streamed over server-sent events or not),
``GET /v1/models``, ``POST /v1/classify`` (label and every label's probability, by evaluation's label scoring),
``POST /v1/feedback``; ``GET /health`` (the process is up), ``/ready`` (the model is loaded) and ``/metrics``
(Prometheus). The model loads in the background after the port opens, so probes can tell "starting" from "dead".

Safe by default: it binds 127.0.0.1; with an API key every route but /health and /ready needs
``Authorization: Bearer KEY``, and binding any other address without a key is refused. Bad requests get an
OpenAI-style JSON error with a 4xx status, never a traceback. SIGTERM stops accepting, lets in-flight requests
finish, then exits. Every answered request (and every error) is one line in the request log
(`tunesmith.monitor.request_log`).
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunesmith.errors import TunesmithError
from tunesmith.monitor.request_log import RequestLog, read_log, write_manifest
from tunesmith.run_dir import RunDir
from tunesmith.serve.engine import Engine
from tunesmith.serve.metrics import ServerMetrics
from tunesmith.serve.openai_api import (
    ApiError,
    ChatRequest,
    ClassifyRequest,
    CompletionRequest,
    FeedbackRequest,
    new_id,
)
from tunesmith.serve.replies import reply, reply_classification
from tunesmith.serve.served import Served, load_served
from tunesmith.serve.state import LOG_FOLDER, ServerSettings, ServerState, check_bind

log = logging.getLogger("tunesmith")
OPEN_ROUTES = ("/health", "/ready")
"""Probes answer without the API key (they say nothing about the model or its users)."""


def create_server_app(load: Callable[[], Served], settings: ServerSettings, on_loaded: Callable[[], None] | None = None,
               on_load_failed: Callable[[str], None] | None = None) -> FastAPI:
    """The server's app; ``load`` runs in a background thread when the app starts."""
    metrics = ServerMetrics()
    state = ServerState(settings, metrics)

    def load_in_background() -> None:
        try:
            served = load()
            state.request_log = RequestLog(settings.log_dir or Path(LOG_FOLDER), settings.log_max_bytes,
                                           settings.log_content)
            write_manifest(state.request_log.folder, served.manifest())
            # Feedback may name an answer of an earlier server on the same log.
            state.known_ids = {record["id"] for record in read_log(state.request_log.folder)
                               if record.get("kind") == "request"}
            state.engine = Engine(served.model, served.models[served.primary].tokenizer, settings.max_batch,
                                  settings.batch_window_s, on_step=metrics.batch_size.observe)
            metrics.watch_engine(state.engine)
            state.served = served
            log.info("ready: serving %s", ", ".join(served.models))
            if on_loaded:
                on_loaded()
        except TunesmithError as error:
            state.load_error = f"the model failed to load: {error}"
            log.error("tunesmith: error: %s", error)
            if on_load_failed:
                on_load_failed(str(error))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loader = threading.Thread(target=load_in_background, name="tunesmith-load", daemon=True)
        loader.start()
        yield
        loader.join()
        if state.engine is not None:
            state.engine.stop(settings.request_timeout_s)
        if state.request_log is not None:
            state.request_log.close()

    app = FastAPI(title="tunesmith", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.tunesmith = state
    _add_error_handlers(app, state)

    @app.middleware("http")
    async def require_key(request: Request, call_next):
        if settings.api_key and request.url.path not in OPEN_ROUTES:
            given = request.headers.get("authorization", "")
            expected = f"Bearer {settings.api_key}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return _error_response(ApiError(401, "missing or wrong API key: send Authorization: Bearer KEY",
                                                 "authentication_error", code="invalid_api_key"))
        return await call_next(request)

    @app.get("/health")
    async def health():
        return {"status": "ok"}

    @app.get("/ready")
    async def ready():
        if state.served is None:
            return JSONResponse({"status": "failed" if state.load_error else "loading", "error": state.load_error},
                                status_code=503)
        return {"status": "ready", "models": list(state.served.models)}

    @app.get("/metrics")
    async def prometheus_metrics():
        return Response(metrics.exposition(), media_type=metrics.content_type)

    @app.get("/v1/models")
    async def models():
        served = state.ready()
        return {"object": "list", "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "tunesmith", "root": served.base_model,
             "task": model.task, "labels": model.labels} for name, model in served.models.items()]}

    @app.post("/v1/chat/completions")
    async def chat_completions(body: ChatRequest):
        model = state.pick(body.model)
        messages = [message.as_message() for message in body.messages]
        return await reply(state, model, body, messages, "/v1/chat/completions", new_id("chatcmpl"))

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest):
        model = state.pick(body.model)
        # Every tunesmith run learned its task through the chat template, so a prompt is sent as one user turn
        # (as `tunesmith generate` and evaluation do), not as raw text to continue.
        messages = [{"role": "user", "content": body.prompt}]
        return await reply(state, model, body, messages, "/v1/completions", new_id("cmpl"))

    @app.post("/v1/classify")
    async def classify(body: ClassifyRequest):
        model = state.pick(body.model)
        return await reply_classification(state, model, body.text, new_id("clf"))

    @app.post("/v1/feedback")
    async def feedback(body: FeedbackRequest):
        state.ready()
        if body.id not in state.known_ids:
            raise ApiError(404, f"no answered request has the id {body.id!r}", param="id", code="unknown_id")
        if body.rating is None and body.correction is None and body.label is None:
            raise ApiError(400, "give a rating (up or down), a correction or a label", param="rating")
        state.write({"kind": "feedback", "id": body.id, "rating": body.rating, "correction": body.correction,
                     "label": body.label})
        return {"id": body.id, "stored": True}

    metrics.instrument(app)  # added last, so it is the outermost layer and counts the key check's 401s too
    return app


def serve(targets: list[str], settings: ServerSettings, shadow: str | None = None) -> int:
    """Serve until SIGTERM or Ctrl-C (in-flight requests finish first). The port opens at once; the model loads
    behind it (`/ready`). Returns the exit code: 2 when the model failed to load."""
    import uvicorn

    check_bind(settings.host, settings.api_key)
    runs = [RunDir(target) for target in [*targets, *([shadow] if shadow else [])]]
    for run in runs:
        if run.config_path.is_file():
            run.config()  # a damaged config fails now, in one line, not in the background
    if settings.log_dir is None:
        first = runs[0]
        settings = replace(settings, log_dir=(first.root if first.config_path.is_file() else Path.cwd()) / LOG_FOLDER)
    failed: list[str] = []
    server: uvicorn.Server | None = None

    def stop_on_failure(message: str) -> None:
        failed.append(message)
        server.should_exit = True

    app = create_server_app(lambda: load_served(targets, shadow), settings, on_load_failed=stop_on_failure)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info",
                            timeout_graceful_shutdown=int(settings.request_timeout_s))
    server = uvicorn.Server(config)
    log.info("request log: %s", settings.log_dir)
    server.run()
    return 2 if failed else 0

# ---- errors -------------------------------------------------------------------------------------------------------


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


def _add_error_handlers(app: FastAPI, state: ServerState) -> None:
    def logged(request: Request, error: ApiError) -> JSONResponse:
        if request.url.path.startswith("/v1/") and state.request_log is not None:
            state.write({"kind": "request", "id": new_id("err"), "model": None, "route": request.url.path,
                         "status": error.status, "latency_s": None, "ttft_s": None, "prompt_tokens": 0,
                         "completion_tokens": 0, "finish_reason": None, "error": error.message})
        return _error_response(error)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        return logged(request, error)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, error: RequestValidationError):
        problems = error.errors()
        first = problems[0] if problems else {}
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        if first.get("type") == "json_invalid":
            message = "the request body is not valid JSON"
        else:
            message = f"{where or 'body'}: {first.get('msg', 'invalid')}" + (
                f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else "")
        return logged(request, ApiError(400, message, param=where or None))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        return _error_response(ApiError(error.status_code, str(error.detail), "invalid_request_error"))

    @app.exception_handler(Exception)
    async def server_error(request: Request, error: Exception):
        log.exception("request failed")
        return logged(request, ApiError(500, f"internal error: {type(error).__name__}", "server_error"))
