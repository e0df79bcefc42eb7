"""Answering requests: chat and text completions through the engine (whole or streamed as server-sent events),
classification by label scoring, and the shadow model's answers; each answer is logged and counted.

An answer carries its confidence (`tunesmith.serve.confidence`): ``/v1/classify`` in its body (``confidence``,
``low_confidence``, ``calibrated``), chat and text completions in a top-level ``tunesmith`` object (in the last
chunk, the one with the finish reason, when streamed) that OpenAI clients keep as an extra field. Each request's
novelty is scored beside the model call (`tunesmith.serve.novelty_worker`) and lands in its request record only.

A prompt is rendered and tokenized off the event loop (a thread), after its size in characters was checked against
the server's token limit (`MAX_CHARS_PER_TOKEN` per token): a huge prompt is refused at once, and no prompt holds
the other requests while it is tokenized. Each request, answered or failed, is one record of the request log: a
failure logged with its model is marked so (`ApiError.logged`), and the error handlers do not log it again.

A chat answer asked with ``logprobs`` carries them in OpenAI's shape (`tunesmith.serve.openai_api.logprobs_content`);
streamed, it comes as one chunk holding the whole text and its log-probabilities (as an answer offered tools does),
then the finish chunk: OpenAI's chunk shape, without incremental text.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future
from contextlib import aclosing

from tunesmith.data.tokenize import prompt_token_ids
from tunesmith.data.tools import conversation_tools, uses_tools
from tunesmith.models.templates import template_label, tool_support_problem
from tunesmith.predict.answers import match_label
from tunesmith.predict.calibration import calibrated_probabilities
from tunesmith.serve.confidence import Confidence, label_confidence
from tunesmith.serve.deployment import Deployment
from tunesmith.serve.engine import Engine, Finished, Generation
from tunesmith.serve.novelty_worker import novelty_fields
from tunesmith.serve.openai_api import (
    ApiError,
    chat_response,
    completion_response,
    logprobs_content,
    stream_chunk,
    usage_chunk,
)
from tunesmith.serve.sampling import Sampling
from tunesmith.serve.served import ServedModel
from tunesmith.serve.state import ServerState
from tunesmith.serve.tool_api import reply_tool_calls, stream_deltas
from tunesmith.web import event_stream, server_sent_event

log = logging.getLogger("tunesmith")
MAX_CHARS_PER_TOKEN = 32
"""A prompt of more characters than this many per allowed token is refused before it is tokenized: no tokenizer
averages that many characters per token over a prompt, and tokenizing tens of megabytes takes minutes."""


def _sampling(state: ServerState, deployment: Deployment, body, prompt_tokens: int) -> Sampling:
    settings = state.settings
    context_length = deployment.served.context_length
    requested = body.requested_tokens()
    if requested is not None and requested > settings.max_tokens:
        name = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
        raise ApiError(400, f"{name} is {requested}; this server allows at most {settings.max_tokens}", param=name)
    limit = prompt_token_limit(state, deployment)
    if prompt_tokens > limit:
        raise ApiError(400, f"the prompt is {prompt_tokens} tokens; this server allows at most {limit}",
                       param="messages", code="context_length_exceeded")
    room = context_length - prompt_tokens
    return Sampling(max_tokens=max(1, min(requested or settings.max_tokens, room)),
                    temperature=body.temperature or 0.0, top_p=body.top_p, seed=body.seed, stop=tuple(body.stop or ()),
                    top_logprobs=body.reported_logprobs())


def prompt_token_limit(state: ServerState, deployment: Deployment) -> int:
    return min(state.settings.max_prompt_tokens, deployment.served.context_length - 1)


def check_prompt_size(state: ServerState, deployment: Deployment, characters: int, param: str) -> None:
    """Refuse a prompt too long to be within the token limit, before it is tokenized."""
    tokens = prompt_token_limit(state, deployment)
    if characters > tokens * MAX_CHARS_PER_TOKEN:
        raise ApiError(400, f"the prompt is {characters} characters; this server allows at most "
                            f"{tokens * MAX_CHARS_PER_TOKEN} ({MAX_CHARS_PER_TOKEN} per token of its {tokens}-token "
                            "limit)", param=param, code="context_length_exceeded")


def prompt_ids_of(model: ServedModel, messages: list[dict]) -> list[int]:
    if uses_tools(messages):
        problem = tool_support_problem(model.tokenizer)
        if problem:
            raise ApiError(400, f"this model's chat template ({template_label(model.tokenizer)}) {problem}: it has "
                                "no tool support, so it cannot be offered tools or shown tool calls", param="tools")
    try:
        return prompt_token_ids(model.tokenizer, model.conversation(messages))
    except Exception as error:  # noqa: BLE001 - a chat template raises what its author chose (TemplateError, ...)
        raise ApiError(400, f"the model's chat template cannot render these messages: {error}",
                       param="messages") from None


async def reply(state: ServerState, deployment: Deployment, model: ServedModel, body, messages: list[dict],
                route: str, request_id: str):
    """Answer ``messages`` with ``model`` of ``deployment`` (the one the request holds): whole, or as an event
    stream whose generation is queued on the deployment's engine before this returns."""
    unsupported = body.unsupported()
    if unsupported in ("logprobs", "top_logprobs"):  # only text completions have them unsupported
        raise ApiError(400, f"{unsupported} is not supported on /v1/completions: ask /v1/chat/completions, which "
                            "returns them (logprobs: true, top_logprobs: 0-20)", param=unsupported)
    if unsupported:
        raise ApiError(400, f"{unsupported} is not supported by tunesmith serve", param=unsupported)
    check_prompt_size(state, deployment, prompt_characters(messages), "messages")
    prompt_ids = await asyncio.to_thread(prompt_ids_of, model, messages)
    sampling = _sampling(state, deployment, body, len(prompt_ids))
    started = time.monotonic()
    deadline = started + state.settings.request_timeout_s
    engine = deployment.engine
    events = engine.stream(prompt_ids, sampling, model.adapter, deployment.served.stop_ids, deadline=deadline)
    record = {"kind": "request", "id": request_id, "model": model.name, "run": model.run_folder, "route": route,
              "messages": messages}
    answer = _Answer(state, model, record, started, deadline, _label_scores(engine, model, messages),
                     _novelty(state, model, messages=messages))
    await _shadow(state, deployment, model, messages, prompt_ids, sampling, request_id)
    chat = route == "/v1/chat/completions"
    offered_tools = bool(conversation_tools(messages))
    if body.stream and not offered_tools and sampling.top_logprobs is None:
        return event_stream(_stream(answer, events, chat, body.include_usage()))
    finished = await _finished(events)
    confidence = await answer.log(finished)
    _raise_if_failed(finished)
    if not chat:
        return {**completion_response(request_id, model.name, finished.text, finished.reason,
                                      finished.prompt_tokens, finished.completion_tokens),
                "tunesmith": confidence.response()}
    calls = reply_tool_calls(finished.text) if offered_tools else None
    logprobs = None
    if finished.token_logprobs is not None:  # decoded off the event loop: up to 21 tokens per chosen one
        logprobs = await asyncio.to_thread(logprobs_content, finished.token_logprobs, _token_text(model))
    if body.stream:
        # With tools offered, whether the answer is text or calls is known only at its end, and log-probabilities
        # are sent with the text they belong to: the answer is sent whole.
        return event_stream(_whole_as_stream(request_id, model.name, finished, calls, confidence,
                                             body.include_usage(), logprobs))
    return {**chat_response(request_id, model.name, finished.text, finished.reason, finished.prompt_tokens,
                            finished.completion_tokens, calls, logprobs), "tunesmith": confidence.response()}


def _token_text(model: ServedModel):
    """A token id's text as `logprobs_content` reports it; special tokens (the end of turn) show as themselves."""
    tokenizer, known = model.tokenizer, {}

    def text(token: int) -> str:
        if token not in known:
            known[token] = tokenizer.decode([token])
        return known[token]

    return text


def prompt_characters(messages: list[dict]) -> int:
    """Characters a conversation puts in the prompt: its texts, and the tools and calls as JSON."""
    tools = conversation_tools(messages)
    calls = [message["tool_calls"] for message in messages if message.get("tool_calls")]
    return (sum(len(message["content"]) for message in messages)
            + (len(json.dumps([tools, calls], ensure_ascii=False)) if tools or calls else 0))


class _Answer:
    """A generation under way, and what its request record needs when it ends: the label scores of its prompt (a
    classification run's chat answer that is a label reports that label's probability) and its novelty, both
    computed beside the generation."""

    def __init__(self, state: ServerState, model: ServedModel, record: dict, started: float, deadline: float,
                 label_scores: Future | None, novelty: Future | None):
        self.state, self.model, self.record, self.started, self.deadline = state, model, record, started, deadline
        self.label_scores, self.novelty = label_scores, novelty

    async def log(self, finished: Finished) -> Confidence | None:
        """Write the request record of ``finished``; its confidence (None for a failed request)."""
        failed = finished.reason in ("timeout", "error")
        confidence = None if failed else await self._confidence(finished)
        ttft = finished.first_token_at - self.started if finished.first_token_at is not None else None
        latency = time.monotonic() - self.started
        self.state.answered({
            **self.record, "status": _failure(finished).status if failed else 200, "latency_s": round(latency, 4),
            "ttft_s": round(ttft, 4) if ttft is not None else None, "prompt_tokens": finished.prompt_tokens,
            "completion_tokens": finished.completion_tokens, "finish_reason": finished.reason, "answer": finished.text,
            **({"error": _failure(finished).message} if failed else {}),
            **(confidence.log_fields() if confidence else {}), **await novelty_fields(self.novelty)})
        self.state.metrics.answered(self.record["route"], self.model.name, ttft, finished.prompt_tokens,
                                    finished.completion_tokens)
        return confidence

    async def _confidence(self, finished: Finished) -> Confidence:
        labels = self.model.labels or []
        label = match_label(finished.text, labels)
        if self.label_scores is not None and label in labels:
            try:
                scores = await asyncio.wait_for(asyncio.wrap_future(self.label_scores),
                                                max(0.0, self.deadline - time.monotonic()))
            except Exception as error:  # noqa: BLE001 - the answer stands; its confidence falls back, said in the log
                log.warning("%s: the label scores of request %s failed (%s: %s); it reports sequence confidence",
                            self.model.name, self.record["id"], type(error).__name__, error)
            else:
                probabilities = calibrated_probabilities(scores, self.model.temperature)
                return Confidence.judged(self.model, probabilities[label], "label_probability",
                                         calibrated=self.model.temperature is not None)
        return Confidence.judged(self.model, finished.confidence, "sequence")


def _label_scores(engine: Engine, model: ServedModel, messages: list[dict]) -> Future | None:
    """The labels of a classification run scored as replies to the chat's prompt, beside its generation."""
    if model.task != "classification" or not model.labels:
        return None
    return engine.classify(model.conversation(messages), model.labels, model.adapter)


def _novelty(state: ServerState, model: ServedModel, text: str | None = None,
             messages: list[dict] | None = None) -> Future | None:
    """The novelty of the request's input, scored on the novelty worker beside the model call; None when the
    served model has no novelty index (or the request no text)."""
    if model.novelty is None or state.novelty is None:
        return None
    given = model.reference.input_of(text=text, messages=messages)
    return state.novelty.score(model.novelty, given) if given is not None else None


async def _finished(events: AsyncIterator[str | Finished]) -> Finished:
    async with aclosing(events):  # a client that goes away cancels the task here, and with it the generation
        async for event in events:
            if isinstance(event, Finished):
                return event
    raise RuntimeError("the engine's events ended without a Finished")  # Engine.stream always ends with one


async def _stream(answer: _Answer, events: AsyncIterator[str | Finished], chat: bool,
                  include_usage: bool) -> AsyncIterator[str]:
    request_id, name = answer.record["id"], answer.model.name
    yield server_sent_event(stream_chunk(request_id, name, chat, "", first=True))
    async with aclosing(events):  # closing the response mid-stream cancels the generation
        async for event in events:
            if isinstance(event, str):
                yield server_sent_event(stream_chunk(request_id, name, chat, event))
                continue
            confidence = await answer.log(event)
            if event.reason in ("timeout", "error"):
                yield server_sent_event(_failure(event).body())
            else:
                last = stream_chunk(request_id, name, chat, None, finish=event.reason)
                yield server_sent_event({**last, "tunesmith": confidence.response()})
                if include_usage:
                    yield server_sent_event(usage_chunk(request_id, name, chat, event.prompt_tokens,
                                                        event.completion_tokens))
            yield server_sent_event("[DONE]")


async def _whole_as_stream(request_id: str, name: str, finished: Finished, calls: list[dict] | None,
                           confidence: Confidence, include_usage: bool,
                           logprobs: dict | None = None) -> AsyncIterator[str]:
    delta = {"role": "assistant", "content": None, "tool_calls": stream_deltas(calls)} if calls else {
        "role": "assistant", "content": finished.text}
    first = stream_chunk(request_id, name, True, None)
    yield server_sent_event({**first, "choices": [{**first["choices"][0], "delta": delta, "logprobs": logprobs}]})
    last = stream_chunk(request_id, name, True, None, finish="tool_calls" if calls else finished.reason)
    yield server_sent_event({**last, "tunesmith": confidence.response()})
    if include_usage:
        yield server_sent_event(usage_chunk(request_id, name, True, finished.prompt_tokens,
                                            finished.completion_tokens))
    yield server_sent_event("[DONE]")


def _failure(finished: Finished) -> ApiError:
    """The error a failed generation is answered with; its request record is written by `_Answer.log`."""
    if finished.reason == "timeout":
        return ApiError(408, "the request ran past the server's timeout and was cancelled", "timeout",
                        code="request_timeout", logged=True)
    return ApiError(500, f"generation failed: {finished.error}", "server_error", logged=True)


def _raise_if_failed(finished: Finished) -> None:
    if finished.reason in ("timeout", "error"):
        raise _failure(finished)


async def _shadow(state: ServerState, deployment: Deployment, model: ServedModel, messages: list[dict],
                  prompt_ids: list[int], sampling: Sampling, request_id: str) -> None:
    """Ask the shadow the same question; its answer is logged beside the primary's and never returned."""
    served = deployment.served
    if served.shadow is None or model.name != served.primary:
        return
    shadow = served.models[served.shadow]
    started = time.monotonic()

    def on_event(event) -> None:
        if isinstance(event, Finished):
            confidence = Confidence.judged(shadow, event.confidence, "sequence")
            state.write({"kind": "shadow", "id": request_id, "model": shadow.name, "run": shadow.run_folder,
                         "answer": event.text,
                         "finish_reason": event.reason, "latency_s": round(time.monotonic() - started, 4),
                         "completion_tokens": event.completion_tokens, **confidence.log_fields()})

    shadow_ids = (await asyncio.to_thread(prompt_ids_of, shadow, messages)
                  if shadow.system_prompt != model.system_prompt else prompt_ids)
    # The shadow's log-probabilities are never returned, so it does not compute them.
    sampling = dataclasses.replace(sampling, top_logprobs=None)
    deployment.engine.submit(Generation(prompt_ids=shadow_ids, sampling=sampling, adapter=shadow.adapter,
                                   stop_ids=served.stop_ids, sink=on_event,
                                   deadline=started + state.settings.request_timeout_s))


# ---- classification ----------------------------------------------------------------------------------------------


async def reply_classification(state: ServerState, deployment: Deployment, model: ServedModel, text: str,
                               request_id: str) -> dict:
    if model.task != "classification" or not model.labels:
        raise ApiError(400, f"{model.name} is a {model.task} model; /v1/classify needs a classification run",
                       param="model")
    started = time.monotonic()
    check_prompt_size(state, deployment, len(text), "text")
    prompt = model.classification_prompt(text)
    prompt_tokens = len(await asyncio.to_thread(prompt_token_ids, model.tokenizer, prompt))
    limit = prompt_token_limit(state, deployment)
    if prompt_tokens > limit:
        raise ApiError(400, f"the text makes a {prompt_tokens}-token prompt; this server allows at most {limit}",
                       param="text", code="context_length_exceeded")
    future = deployment.engine.classify(prompt, model.labels, model.adapter)
    novelty = _novelty(state, model, text=text)
    shadow = _shadow_classification(deployment, model, text)
    record = {"kind": "request", "id": request_id, "model": model.name, "run": model.run_folder,
              "route": "/v1/classify", "ttft_s": None, "prompt_tokens": prompt_tokens, "completion_tokens": 0,
              "text": text}
    try:
        scores = await asyncio.wait_for(asyncio.wrap_future(future), state.settings.request_timeout_s)
    except asyncio.TimeoutError:
        failure = ApiError(408, "the request ran past the server's timeout", "timeout", code="request_timeout",
                           logged=True)
    except Exception as error:  # noqa: BLE001 - the engine's scoring failed: answered and logged as this request's
        failure = ApiError(500, f"classification failed: {type(error).__name__}: {error}", "server_error",
                           logged=True)
    else:
        failure = None
    latency = round(time.monotonic() - started, 4)
    if failure is not None:
        state.answered({**record, "status": failure.status, "latency_s": latency, "finish_reason": None,
                        "error": failure.message, **await novelty_fields(novelty)})
        raise failure
    label, probabilities, confidence = label_confidence(model, scores)
    state.answered({**record, "status": 200, "latency_s": latency, "finish_reason": "stop", "label": label,
                    "probability": probabilities[label], **confidence.log_fields(), **await novelty_fields(novelty)})
    state.metrics.answered("/v1/classify", model.name, None, prompt_tokens, 0)
    if shadow is not None:
        shadow_model, shadow_future = shadow
        shadow_future.add_done_callback(lambda done: _log_shadow_label(state, request_id, shadow_model, done, started))
    return {"id": request_id, "object": "classification", "model": model.name, "label": label,
            "probabilities": probabilities, **confidence.response(), "calibrated": confidence.calibrated,
            "usage": {"prompt_tokens": prompt_tokens}}


def _shadow_classification(deployment: Deployment, model: ServedModel, text: str):
    served = deployment.served
    if served.shadow is None or model.name != served.primary:
        return None
    shadow = served.models[served.shadow]
    if shadow.task != "classification" or not shadow.labels:
        return None
    return shadow, deployment.engine.classify(shadow.classification_prompt(text), shadow.labels, shadow.adapter)


def _log_shadow_label(state: ServerState, request_id: str, shadow: ServedModel, future, started: float) -> None:
    if future.exception() is not None:
        return
    label, probabilities, confidence = label_confidence(shadow, future.result())
    state.write({"kind": "shadow", "id": request_id, "model": shadow.name, "run": shadow.run_folder, "label": label,
                 "probability": probabilities[label], "latency_s": round(time.monotonic() - started, 4),
                 **confidence.log_fields()})
