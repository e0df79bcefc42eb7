"""`tunesmith serve`: an OpenAI-compatible HTTP server (FastAPI + uvicorn) over the batching engine.

Routes: ``POST /v1/chat/completions`` and ``/v1/completions`` (streamed over server-sent events or not),
``GET /v1/models``, ``POST /v1/classify`` (label and every label's probability, by evaluation's label scoring),
``POST /v1/feedback``; ``GET /health`` (the process is up), ``/ready`` (the model is loaded) and ``/metrics``
(Prometheus). The model loads in the background after the port opens, so probes can tell "starting" from "dead".

Safe by default: it binds 127.0.0.1; with an API key every route but /health and /ready needs
``Authorization: Bearer KEY``, and binding any other address without a key is refused. Bad requests get an
OpenAI-style JSON error with a 4xx status, never a traceback. SIGTERM stops accepting, lets in-flight requests
finish, then exits. Every answered request (and every error) is one line in the request log
(`tunesmith.deploy.request_log`).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from tunesmith.data.tokenize import prompt_token_ids
from tunesmith.deploy.engine import Engine, Finished, Generation, Sampling
from tunesmith.deploy.openai_api import (
    ApiError,
    ChatRequest,
    ClassifyRequest,
    CompletionRequest,
    FeedbackRequest,
    chat_response,
    completion_response,
    new_id,
    stream_chunk,
    usage_chunk,
)
from tunesmith.deploy.request_log import RequestLog, read_log, write_manifest
from tunesmith.deploy.served import Served, ServedModel, load_served
from tunesmith.deploy.server_metrics import ServerMetrics
from tunesmith.errors import ConfigError, TunesmithError
from tunesmith.json_files import dumps
from tunesmith.run_dir import RunDir

log = logging.getLogger("tunesmith")
LOG_FOLDER = "serve_logs"
"""The request log's folder in the first run's folder (or the current one, serving a plain model)."""
OPEN_ROUTES = ("/health", "/ready")
"""Probes answer without the API key (they say nothing about the model or its users)."""


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8000
    api_key: str | None = None
    log_dir: Path | None = None
    log_content: bool = True
    log_max_bytes: int = 64 * 1024 * 1024
    max_prompt_tokens: int = 4096
    """Longer prompts are refused (400); the model's context length caps it too."""
    max_tokens: int = 512
    """The most tokens a request may ask for, and what it gets when it asks for none."""
    request_timeout_s: float = 120.0
    max_batch: int = 32
    batch_window_s: float = 0.005


def check_bind(host: str, api_key: str | None) -> None:
    """Binding beyond this machine exposes the model (and the request log's content) to the network: only with a
    key."""
    if api_key or host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ConfigError("--host", f"binding {host} (not a loopback address) without an API key would let anyone who "
                      "can reach this machine use the model", "give --api-key (or set TUNESMITH_API_KEY)")


class _State:
    """What the routes share: the loaded models and engine (once loading finished), the log, the metrics."""

    def __init__(self, settings: ServerSettings, metrics: ServerMetrics):
        self.settings, self.metrics = settings, metrics
        self.served: Served | None = None
        self.engine: Engine | None = None
        self.request_log: RequestLog | None = None
        self.load_error: str | None = None
        self.known_ids: set[str] = set()

    def ready(self) -> Served:
        if self.served is None:
            raise ApiError(503, self.load_error or "the model is still loading; retry when /ready says ready",
                           "service_unavailable")
        return self.served

    def pick(self, name: str | None) -> ServedModel:
        served = self.ready()
        model = served.models.get(name or served.primary)
        if model is None:
            raise ApiError(404, f"the model {name!r} does not exist; served: {', '.join(served.models)}",
                           param="model", code="model_not_found")
        return model

    def write(self, record: dict) -> None:
        if self.request_log is not None:
            self.request_log.write(record)


def create_app(load: Callable[[], Served], settings: ServerSettings, on_loaded: Callable[[], None] | None = None,
               on_load_failed: Callable[[str], None] | None = None) -> FastAPI:
    """The server's app; ``load`` runs in a background thread when the app starts."""
    metrics = ServerMetrics()
    state = _State(settings, metrics)

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
        return await _answer(state, model, body, messages, "/v1/chat/completions", new_id("chatcmpl"))

    @app.post("/v1/completions")
    async def completions(body: CompletionRequest):
        model = state.pick(body.model)
        # Every tunesmith run learned its task through the chat template, so a prompt is sent as one user turn
        # (as `tunesmith generate` and evaluation do), not as raw text to continue.
        messages = [{"role": "user", "content": body.prompt}]
        return await _answer(state, model, body, messages, "/v1/completions", new_id("cmpl"))

    @app.post("/v1/classify")
    async def classify(body: ClassifyRequest):
        model = state.pick(body.model)
        return await _classify(state, model, body.text, new_id("clf"))

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

    app = create_app(lambda: load_served(targets, shadow), settings, on_load_failed=stop_on_failure)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info",
                            timeout_graceful_shutdown=int(settings.request_timeout_s))
    server = uvicorn.Server(config)
    log.info("request log: %s", settings.log_dir)
    server.run()
    return 2 if failed else 0


# ---- generation --------------------------------------------------------------------------------------------------


def _sampling(state: _State, body, prompt_tokens: int) -> Sampling:
    settings = state.settings
    requested = body.requested_tokens()
    if requested is not None and requested > settings.max_tokens:
        raise ApiError(400, f"max_tokens is {requested}; this server allows at most {settings.max_tokens}",
                       param="max_tokens")
    limit = min(settings.max_prompt_tokens, state.ready().context_length - 1)
    if prompt_tokens > limit:
        raise ApiError(400, f"the prompt is {prompt_tokens} tokens; this server allows at most {limit}",
                       param="messages", code="context_length_exceeded")
    room = state.ready().context_length - prompt_tokens
    return Sampling(max_tokens=max(1, min(requested or settings.max_tokens, room)),
                    temperature=body.temperature or 0.0, top_p=body.top_p, seed=body.seed, stop=tuple(body.stop or ()))


def _prompt_ids(model: ServedModel, messages: list[dict]) -> list[int]:
    try:
        return prompt_token_ids(model.tokenizer, model.conversation(messages))
    except Exception as error:  # noqa: BLE001 - a chat template raises what its author chose (TemplateError, ...)
        raise ApiError(400, f"the model's chat template cannot render these messages: {error}",
                       param="messages") from None


async def _answer(state: _State, model: ServedModel, body, messages: list[dict], route: str, request_id: str):
    unsupported = body.unsupported()
    if unsupported:
        raise ApiError(400, f"{unsupported} is not supported by tunesmith serve", param=unsupported)
    prompt_ids = _prompt_ids(model, messages)
    sampling = _sampling(state, body, len(prompt_ids))
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    generation = state.engine.submit(Generation(
        prompt_ids=prompt_ids, sampling=sampling, adapter=model.adapter, stop_ids=state.served.stop_ids,
        sink=lambda event: loop.call_soon_threadsafe(events.put_nowait, event),
        deadline=started + state.settings.request_timeout_s))
    record = {"kind": "request", "id": request_id, "model": model.name, "route": route, "messages": messages}
    _shadow(state, model, messages, prompt_ids, sampling, request_id)
    chat = route == "/v1/chat/completions"
    if body.stream:
        stream = _stream(state, generation, events, record, started, chat, body.include_usage())
        return StreamingResponse(stream, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
    try:
        finished = await _finished(events)
    except asyncio.CancelledError:  # the client went away
        generation.cancel()
        raise
    _log_answer(state, record, finished, started)
    _raise_if_failed(finished)
    build = chat_response if chat else completion_response
    return build(request_id, model.name, finished.text, finished.reason, finished.prompt_tokens,
                 finished.completion_tokens)


async def _finished(events: asyncio.Queue) -> Finished:
    while True:
        event = await events.get()
        if isinstance(event, Finished):
            return event


async def _stream(state: _State, generation: Generation, events: asyncio.Queue, record: dict, started: float,
                  chat: bool, include_usage: bool) -> AsyncIterator[str]:
    request_id, name = record["id"], record["model"]
    yield _event(stream_chunk(request_id, name, chat, "", first=True))
    try:
        while True:
            event = await events.get()
            if isinstance(event, str):
                yield _event(stream_chunk(request_id, name, chat, event))
                continue
            _log_answer(state, record, event, started)
            if event.reason in ("timeout", "error"):
                yield _event(_failure(event).body())
            else:
                yield _event(stream_chunk(request_id, name, chat, None, finish=event.reason))
                if include_usage:
                    yield _event(usage_chunk(request_id, name, chat, event.prompt_tokens, event.completion_tokens))
            yield "data: [DONE]\n\n"
            return
    finally:
        generation.cancel()  # no-op once finished; drops the row when the client disconnected mid-stream


def _event(data: dict) -> str:
    return f"data: {dumps(data)}\n\n"


def _failure(finished: Finished) -> ApiError:
    if finished.reason == "timeout":
        return ApiError(408, "the request ran past the server's timeout and was cancelled", "timeout",
                        code="request_timeout")
    return ApiError(500, f"generation failed: {finished.error}", "server_error")


def _raise_if_failed(finished: Finished) -> None:
    if finished.reason in ("timeout", "error"):
        raise _failure(finished)


def _log_answer(state: _State, record: dict, finished: Finished, started: float) -> None:
    failed = finished.reason in ("timeout", "error")
    ttft = finished.first_token_at - started if finished.first_token_at is not None else None
    latency = time.monotonic() - started
    state.write({**record, "status": _failure(finished).status if failed else 200, "latency_s": round(latency, 4),
                 "ttft_s": round(ttft, 4) if ttft is not None else None, "prompt_tokens": finished.prompt_tokens,
                 "completion_tokens": finished.completion_tokens, "finish_reason": finished.reason,
                 "answer": finished.text, **({"error": _failure(finished).message} if failed else {})})
    state.known_ids.add(record["id"])
    state.metrics.answered(record["route"], record["model"], ttft, finished.prompt_tokens, finished.completion_tokens)


def _shadow(state: _State, model: ServedModel, messages: list[dict], prompt_ids: list[int], sampling: Sampling,
            request_id: str) -> None:
    """Ask the shadow the same question; its answer is logged beside the primary's and never returned."""
    served = state.served
    if served.shadow is None or model.name != served.primary:
        return
    shadow = served.models[served.shadow]
    started = time.monotonic()

    def on_event(event) -> None:
        if isinstance(event, Finished):
            state.write({"kind": "shadow", "id": request_id, "model": shadow.name, "answer": event.text,
                         "finish_reason": event.reason, "latency_s": round(time.monotonic() - started, 4),
                         "completion_tokens": event.completion_tokens})

    shadow_ids = _prompt_ids(shadow, messages) if shadow.system_prompt != model.system_prompt else prompt_ids
    state.engine.submit(Generation(prompt_ids=shadow_ids, sampling=sampling, adapter=shadow.adapter,
                                   stop_ids=served.stop_ids, sink=on_event,
                                   deadline=started + state.settings.request_timeout_s))


# ---- classification ----------------------------------------------------------------------------------------------


async def _classify(state: _State, model: ServedModel, text: str, request_id: str) -> dict:
    if model.task != "classification" or not model.labels:
        raise ApiError(400, f"{model.name} is a {model.task} model; /v1/classify needs a classification run",
                       param="model")
    started = time.monotonic()
    prompt = model.classification_prompt(text)
    prompt_tokens = len(prompt_token_ids(model.tokenizer, prompt))
    limit = min(state.settings.max_prompt_tokens, state.ready().context_length - 1)
    if prompt_tokens > limit:
        raise ApiError(400, f"the text makes a {prompt_tokens}-token prompt; this server allows at most {limit}",
                       param="text", code="context_length_exceeded")
    future = state.engine.classify(prompt, model.labels, model.adapter)
    shadow = _shadow_classification(state, model, text)
    try:
        scores = await asyncio.wait_for(asyncio.wrap_future(future), state.settings.request_timeout_s)
    except asyncio.TimeoutError:
        raise ApiError(408, "the request ran past the server's timeout", "timeout", code="request_timeout") from None
    probabilities = _softmax(scores)
    label = max(model.labels, key=probabilities.__getitem__)  # the first listed on a tie, as evaluation picks
    latency = time.monotonic() - started
    state.write({"kind": "request", "id": request_id, "model": model.name, "route": "/v1/classify", "status": 200,
                 "latency_s": round(latency, 4), "ttft_s": None, "prompt_tokens": prompt_tokens,
                 "completion_tokens": 0, "finish_reason": "stop", "text": text, "label": label,
                 "probability": probabilities[label]})
    state.known_ids.add(request_id)
    state.metrics.answered("/v1/classify", model.name, None, prompt_tokens, 0)
    if shadow is not None:
        shadow_name, shadow_future = shadow
        shadow_future.add_done_callback(lambda done: _log_shadow_label(state, request_id, shadow_name, done, started))
    return {"id": request_id, "object": "classification", "model": model.name, "label": label,
            "probabilities": probabilities, "usage": {"prompt_tokens": prompt_tokens}}


def _shadow_classification(state: _State, model: ServedModel, text: str):
    served = state.served
    if served.shadow is None or model.name != served.primary:
        return None
    shadow = served.models[served.shadow]
    if shadow.task != "classification" or not shadow.labels:
        return None
    return shadow.name, state.engine.classify(shadow.classification_prompt(text), shadow.labels, shadow.adapter)


def _log_shadow_label(state: _State, request_id: str, name: str, future, started: float) -> None:
    if future.exception() is not None:
        return
    probabilities = _softmax(future.result())
    label = max(probabilities, key=probabilities.__getitem__)
    state.write({"kind": "shadow", "id": request_id, "model": name, "label": label,
                 "probability": probabilities[label], "latency_s": round(time.monotonic() - started, 4)})


def _softmax(scores: dict[str, float]) -> dict[str, float]:
    """Label log-probabilities → probabilities over the label set (they sum to 1)."""
    top = max(scores.values())
    weights = {label: math.exp(score - top) for label, score in scores.items()}
    total = sum(weights.values())
    return {label: weight / total for label, weight in weights.items()}


# ---- errors -------------------------------------------------------------------------------------------------------


def _error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status)


def _add_error_handlers(app: FastAPI, state: _State) -> None:
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
