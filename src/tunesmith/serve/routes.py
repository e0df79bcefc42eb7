"""The server's routes (`router`): the OpenAI endpoints, classification, feedback, the probes and the metrics. They
reach what they share (`tunesmith.serve.state.ServerState`) through the app (`State`); the app itself is built by
`tunesmith.serve.server.create_server_app`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

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


async def server_state(request: Request) -> ServerState:
    return request.app.state.tunesmith


State = Annotated[ServerState, Depends(server_state)]
router = APIRouter()


@router.get("/health")
async def health():
    return {"status": "ok"}


@router.get("/ready")
async def ready(state: State):
    if state.served is None:
        return JSONResponse({"status": "failed" if state.load_error else "loading", "error": state.load_error},
                            status_code=503)
    return {"status": "ready", "models": list(state.served.models)}


@router.get("/metrics")
async def prometheus_metrics(state: State):
    return Response(state.metrics.exposition(), media_type=state.metrics.content_type)


@router.get("/v1/models")
async def models(state: State):
    served = state.ready()
    return {"object": "list", "data": [
        {"id": name, "object": "model", "created": 0, "owned_by": "tunesmith", "root": served.base_model,
         "task": model.task, "labels": model.labels} for name, model in served.models.items()]}


@router.post("/v1/chat/completions")
async def chat_completions(body: ChatRequest, state: State):
    model = state.pick(body.model)
    messages = [message.as_message() for message in body.messages]
    return await reply(state, model, body, messages, "/v1/chat/completions", new_id("chatcmpl"))


@router.post("/v1/completions")
async def completions(body: CompletionRequest, state: State):
    model = state.pick(body.model)
    # Every tunesmith run learned its task through the chat template, so a prompt is sent as one user turn
    # (as `tunesmith generate` and evaluation do), not as raw text to continue.
    messages = [{"role": "user", "content": body.prompt}]
    return await reply(state, model, body, messages, "/v1/completions", new_id("cmpl"))


@router.post("/v1/classify")
async def classify(body: ClassifyRequest, state: State):
    model = state.pick(body.model)
    return await reply_classification(state, model, body.text, new_id("clf"))


@router.post("/v1/feedback")
async def feedback(body: FeedbackRequest, state: State):
    """Feedback on an answer, checked against the model that gave it: a label must be one of its labels."""
    served = state.ready()
    if body.id not in state.known_ids:
        raise ApiError(404, f"no answered request has the id {body.id!r}", param="id", code="unknown_id")
    if body.rating is None and body.correction is None and body.label is None:
        raise ApiError(400, "give a rating (up or down), a correction or a label", param="rating")
    name = state.known_ids[body.id]
    if body.label is not None:
        _check_label(served.models.get(name), name, body.label)
    state.write({"kind": "feedback", "id": body.id, "model": name, "rating": body.rating,
                 "correction": body.correction, "label": body.label})
    return {"id": body.id, "model": name, "stored": True}


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
