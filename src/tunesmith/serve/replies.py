"""Answering requests: chat and text completions through the engine (whole or streamed as server-sent events),
classification by label scoring, and the shadow model's answers; each answer is logged and counted."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from contextlib import aclosing

from tunesmith.data.tokenize import prompt_token_ids
from tunesmith.serve.engine import Finished, Generation, Sampling
from tunesmith.serve.openai_api import (
    ApiError,
    chat_response,
    completion_response,
    stream_chunk,
    usage_chunk,
)
from tunesmith.serve.served import ServedModel
from tunesmith.serve.state import ServerState
from tunesmith.web import event_stream, server_sent_event


def _sampling(state: ServerState, body, prompt_tokens: int) -> Sampling:
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


def prompt_ids_of(model: ServedModel, messages: list[dict]) -> list[int]:
    try:
        return prompt_token_ids(model.tokenizer, model.conversation(messages))
    except Exception as error:  # noqa: BLE001 - a chat template raises what its author chose (TemplateError, ...)
        raise ApiError(400, f"the model's chat template cannot render these messages: {error}",
                       param="messages") from None


async def reply(state: ServerState, model: ServedModel, body, messages: list[dict], route: str, request_id: str):
    unsupported = body.unsupported()
    if unsupported:
        raise ApiError(400, f"{unsupported} is not supported by tunesmith serve", param=unsupported)
    prompt_ids = prompt_ids_of(model, messages)
    sampling = _sampling(state, body, len(prompt_ids))
    started = time.monotonic()
    events = state.engine.stream(prompt_ids, sampling, model.adapter, state.served.stop_ids,
                                 deadline=started + state.settings.request_timeout_s)
    record = {"kind": "request", "id": request_id, "model": model.name, "route": route, "messages": messages}
    _shadow(state, model, messages, prompt_ids, sampling, request_id)
    chat = route == "/v1/chat/completions"
    if body.stream:
        return event_stream(_stream(state, events, record, started, chat, body.include_usage()))
    finished = await _finished(events)
    _log_answer(state, record, finished, started)
    _raise_if_failed(finished)
    build = chat_response if chat else completion_response
    return build(request_id, model.name, finished.text, finished.reason, finished.prompt_tokens,
                 finished.completion_tokens)


async def _finished(events: AsyncIterator[str | Finished]) -> Finished:
    async with aclosing(events):  # a client that goes away cancels the task here, and with it the generation
        async for event in events:
            if isinstance(event, Finished):
                return event
    raise RuntimeError("the engine's events ended without a Finished")  # Engine.stream always ends with one


async def _stream(state: ServerState, events: AsyncIterator[str | Finished], record: dict, started: float,
                  chat: bool, include_usage: bool) -> AsyncIterator[str]:
    request_id, name = record["id"], record["model"]
    yield server_sent_event(stream_chunk(request_id, name, chat, "", first=True))
    async with aclosing(events):  # closing the response mid-stream cancels the generation
        async for event in events:
            if isinstance(event, str):
                yield server_sent_event(stream_chunk(request_id, name, chat, event))
                continue
            _log_answer(state, record, event, started)
            if event.reason in ("timeout", "error"):
                yield server_sent_event(_failure(event).body())
            else:
                yield server_sent_event(stream_chunk(request_id, name, chat, None, finish=event.reason))
                if include_usage:
                    yield server_sent_event(usage_chunk(request_id, name, chat, event.prompt_tokens,
                                                        event.completion_tokens))
            yield server_sent_event("[DONE]")


def _failure(finished: Finished) -> ApiError:
    if finished.reason == "timeout":
        return ApiError(408, "the request ran past the server's timeout and was cancelled", "timeout",
                        code="request_timeout")
    return ApiError(500, f"generation failed: {finished.error}", "server_error")


def _raise_if_failed(finished: Finished) -> None:
    if finished.reason in ("timeout", "error"):
        raise _failure(finished)


def _log_answer(state: ServerState, record: dict, finished: Finished, started: float) -> None:
    failed = finished.reason in ("timeout", "error")
    ttft = finished.first_token_at - started if finished.first_token_at is not None else None
    latency = time.monotonic() - started
    state.write({**record, "status": _failure(finished).status if failed else 200, "latency_s": round(latency, 4),
                 "ttft_s": round(ttft, 4) if ttft is not None else None, "prompt_tokens": finished.prompt_tokens,
                 "completion_tokens": finished.completion_tokens, "finish_reason": finished.reason,
                 "answer": finished.text, **({"error": _failure(finished).message} if failed else {})})
    state.known_ids.add(record["id"])
    state.metrics.answered(record["route"], record["model"], ttft, finished.prompt_tokens, finished.completion_tokens)


def _shadow(state: ServerState, model: ServedModel, messages: list[dict], prompt_ids: list[int], sampling: Sampling,
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

    shadow_ids = prompt_ids_of(shadow, messages) if shadow.system_prompt != model.system_prompt else prompt_ids
    state.engine.submit(Generation(prompt_ids=shadow_ids, sampling=sampling, adapter=shadow.adapter,
                                   stop_ids=served.stop_ids, sink=on_event,
                                   deadline=started + state.settings.request_timeout_s))


# ---- classification ----------------------------------------------------------------------------------------------


async def reply_classification(state: ServerState, model: ServedModel, text: str, request_id: str) -> dict:
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


def _shadow_classification(state: ServerState, model: ServedModel, text: str):
    served = state.served
    if served.shadow is None or model.name != served.primary:
        return None
    shadow = served.models[served.shadow]
    if shadow.task != "classification" or not shadow.labels:
        return None
    return shadow.name, state.engine.classify(shadow.classification_prompt(text), shadow.labels, shadow.adapter)


def _log_shadow_label(state: ServerState, request_id: str, name: str, future, started: float) -> None:
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
