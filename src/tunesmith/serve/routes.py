"""The server's routes (`router`): the OpenAI endpoints, classification, feedback, the probes, the metrics and
``POST /admin/reload``. They reach what they share (`tunesmith.serve.state.ServerState`) through the app (`State`);
the app itself is built by `tunesmith.serve.server.create_server_app`. A route that answers with a model holds the
deployment it started on (`ServerState.lease`) until its answer is made, so a reload meanwhile does not touch it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from tunesmith.data.tools import with_tools
from tunesmith.serve.openai_api import (
    ApiError,
    ChatRequest,
    ClassifyRequest,
    CompletionRequest,
    FeedbackRequest,
    new_id,
)
from tunesmith.serve.replies import reply, reply_classification
from tunesmith.serve.served import ServedModel
from tunesmith.serve.state import ServerState
from tunesmith.web import is_loopback

MAX_RELOAD_BODY = 64
"""``POST /admin/reload`` takes no body (or ``{}``); a longer one is refused unread."""


async def server_state(request: Request) -> ServerState:
    return request.app.state.tunesmith


State = Annotated[ServerState, Depends(server_state)]
router = APIRouter()


@router.get("/health")
async def health():
    return {"status": "ok"}


@router.get("/ready")
async def ready(state: State):
    deployment = state.deployment
    if deployment is None:
        return JSONResponse({"status": "failed" if state.load_error else "loading", "error": state.load_error},
                            status_code=503)
    return {"status": "ready", "models": list(deployment.served.models), "runs": deployment.runs(),
            "reload_error": state.reload_error}


@router.get("/metrics")
async def prometheus_metrics(state: State):
    return Response(state.metrics.exposition(), media_type=state.metrics.content_type)


@router.get("/v1/models")
async def models(state: State):
    served = state.ready().served
    return {"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "tunesmith", "root": served.base_model,
         "run": model.run_folder, "task": model.task, "labels": model.labels} for name, model in served.models.items()]}


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatRequest, state: State):
    messages = list(with_tools(tuple(message.as_message() for message in body.messages), body.offered_tools()))
    with state.lease() as deployment:
        return await reply(state, deployment, deployment.pick(body.model), body, messages, "/v1/chat/completions",
                           new_id("chatcmpl"))


@router.post("/v1/completions")
async def completions(body: CompletionRequest, state: State):
    # Every tunesmith run learned its task through the chat template, so a prompt is sent as one user turn
    # (as `tunesmith generate` and evaluation do), not as raw text to continue.
    messages = [{"role": "user", "content": body.prompt}]
    with state.lease() as deployment:
        return await reply(state, deployment, deployment.pick(body.model), body, messages, "/v1/completions",
                           new_id("cmpl"))


@router.post("/v1/classify")
async def classify(body: ClassifyRequest, state: State):
    with state.lease() as deployment:
        return await reply_classification(state, deployment, deployment.pick(body.model), body.text, new_id("clf"))


@router.post("/v1/feedback")
async def feedback(body: FeedbackRequest, state: State):
    """Feedback on an answer, checked against the model that gave it: a label must be one of its labels."""
    served = state.ready().served
    if body.id not in state.known_ids:
        raise ApiError(404, f"no answered request has the id {body.id!r}", param="id", code="unknown_id")
    if body.rating is None and body.correction is None and body.label is None:
        raise ApiError(400, "give a rating (up or down), a correction or a label", param="rating")
    name, run = state.known_ids[body.id]
    if body.label is not None:
        answering = served.models.get(name)
        same_run = answering is not None and run in (None, answering.run_folder)  # None: logged before runs were
        _check_label(answering if same_run else None, name, body.label)
    state.write({"kind": "feedback", "id": body.id, "model": name, "run": run, "rating": body.rating,
                 "correction": body.correction, "label": body.label})
    return {"id": body.id, "model": name, "run": run, "stored": True}


@router.post("/admin/reload")
async def admin_reload(request: Request, state: State):
    """Load what the server serves anew (the watched marker's run) and swap it in (`ServerState.reload`). Needs the
    API key when the server has one (the key check); without one, only a client on this machine may ask."""
    client = request.client.host if request.client else ""
    if not state.settings.api_key and not is_loopback(client):
        raise ApiError(403, "a reload from beyond this machine needs the server to require an API key (--api-key)",
                       "permission_error", code="forbidden")
    if not await _empty_body(request):
        raise ApiError(400, "POST /admin/reload takes no body: it reloads what the server was started with (the "
                            "watched marker's run)", param="body")
    return await run_in_threadpool(state.reload, "admin")


async def _empty_body(request: Request) -> bool:
    """Whether the body is empty or ``{}``, read no further than `MAX_RELOAD_BODY` bytes."""
    length = request.headers.get("content-length", "0")
    if not length.isdigit() or int(length) > MAX_RELOAD_BODY:
        return False
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_RELOAD_BODY:
            return False
    return body.strip() in (b"", b"{}")


def _check_label(model: ServedModel | None, name: str, label: str) -> None:
    if model is None:
        raise ApiError(400, f"{name}, which answered this request, is not served now, so its labels are unknown; "
                            "send a rating or a correction", param="label", code="unknown_model")
    if model.task != "classification" or not model.labels:
        raise ApiError(400, f"{name} is a {model.task} model, which has no labels: send a correction instead",
                       param="label", code="not_classification")
    if label not in model.labels:
        raise ApiError(400, f"{label[:100]!r} is not a label of {name}; its labels are: {', '.join(model.labels)}",
                       param="label", code="unknown_label")
