"""The playground: chat with a run's model and its base side by side, tokens streamed to both panes.

Models come from the serving code: `tunesmith.serve.served.load_served` loads an adapter run on its base and
serves the base too (as ``base``), and the batching engine (`tunesmith.serve.engine.Engine`) generates, so both
panes' requests decode in one batch. A full fine-tune has no base inside it: its base model is loaded beside it,
with an engine of its own. Nothing loads until a run's playground is first opened; the `KEEP_LOADED` runs used
last stay loaded.

The conversation is rendered with the run's chat template and system prompt, both editable on the page: an
edited template renders this request only, through the tokenizer's own (sandboxed) Jinja.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from tunesmith.config.vocabulary import BASE_MODEL, uses_adapter
from tunesmith.data.tokenize import prompt_token_ids
from tunesmith.json_files import dumps
from tunesmith.run_dir import RunDir
from tunesmith.serve.engine import Engine, Finished, Generation, Sampling
from tunesmith.serve.served import Served, ServedModel, load_served
from tunesmith.ui.pages import UiSettings, find_run, render
from tunesmith.ui.runs import find_runs

REQUEST_TIMEOUT_S = 300.0


@dataclass
class Pane:
    """One side of the playground: a served name and the engine that generates for it."""

    model: ServedModel
    served: Served
    engine: Engine


@dataclass
class LoadedRun:
    tuned: Pane
    base: Pane

    def stop(self) -> None:
        """Stop the engines (answers under way finish first); the models go with the last reference."""
        for engine in {id(pane.engine): pane.engine for pane in (self.tuned, self.base)}.values():
            engine.stop()


KEEP_LOADED = 2
"""Runs kept loaded at once: opening another unloads the one used longest ago, so a session that looks through
many runs holds two models' memory (four for full fine-tunes, each beside its base), not all of them."""


class Playground:
    """The runs loaded so far (each on first use), by run folder, the most recently used last."""

    def __init__(self):
        self._loaded: OrderedDict[str, LoadedRun] = OrderedDict()
        self._lock = threading.Lock()

    def load(self, run: RunDir) -> LoadedRun:
        """The run's panes, loading them on first use (blocking: call it from a worker thread)."""
        key = str(run.root.resolve())
        with self._lock:  # two tabs opening one run at once load it once
            if key not in self._loaded:
                while len(self._loaded) >= KEEP_LOADED:
                    self._loaded.popitem(last=False)[1].stop()
                self._loaded[key] = self._load(run)
            self._loaded.move_to_end(key)
            return self._loaded[key]

    def _load(self, run: RunDir) -> LoadedRun:
        config = run.config()
        served = load_served([str(run.root)])
        tuned = _pane(served, served.models[served.primary])
        if uses_adapter(config.method):
            return LoadedRun(tuned=tuned, base=Pane(served.models[BASE_MODEL], served, tuned.engine))
        base = load_served([config.model.name])  # a full fine-tune replaced every weight: its base loads apart
        return LoadedRun(tuned=tuned, base=_pane(base, base.models[base.primary]))

    def close(self) -> None:
        with self._lock:
            while self._loaded:
                self._loaded.popitem()[1].stop()


def _pane(served: Served, model: ServedModel) -> Pane:
    return Pane(model, served, Engine(served.model, model.tokenizer, max_batch=8))


class ChatMessage(BaseModel):
    role: Literal["user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    run: str
    side: Literal["tuned", "base"]
    messages: list[ChatMessage] = Field(min_length=1)
    system: str = ""
    template: str | None = None
    """An edited chat template; None (or the run's own) renders with the run's."""
    max_tokens: int = Field(128, ge=1)


def router(settings: UiSettings, playground: Playground) -> APIRouter:
    routes = APIRouter()

    @routes.get("/playground")
    def playground_page(request: Request, run: str = ""):
        if not run:
            return render(request, "playground_pick.html", names=list(find_runs(settings.runs_dir)))
        find_run(settings, run)
        return render(request, "playground.html", run=run, max_tokens=settings.max_tokens)

    @routes.get("/api/playground/info")
    async def playground_info(run: str):
        loaded = await run_in_threadpool(playground.load, find_run(settings, run))
        model = loaded.tuned.model
        return {"run": run, "tuned": model.name, "base": loaded.base.model.name, "task": model.task,
                "system_prompt": model.system_prompt or "", "template": model.tokenizer.chat_template or ""}

    @routes.post("/api/playground/chat")
    async def playground_chat(body: ChatRequest):
        loaded = await run_in_threadpool(playground.load, find_run(settings, body.run))
        pane = loaded.tuned if body.side == "tuned" else loaded.base
        conversation = ([{"role": "system", "content": body.system}] if body.system.strip() else []) + [
            message.model_dump() for message in body.messages]
        prompt_ids = _prompt_ids(pane.model.tokenizer, conversation, body.template)
        room = pane.served.context_length - len(prompt_ids)
        if room < 1:
            raise HTTPException(400, f"the conversation is {len(prompt_ids)} tokens, the model's context "
                                     f"{pane.served.context_length}: clear the chat")
        sampling = Sampling(max_tokens=min(body.max_tokens, settings.max_tokens, room))
        return StreamingResponse(_stream(pane, prompt_ids, sampling), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    return routes


def _prompt_ids(tokenizer, conversation: list[dict], template: str | None) -> list[int]:
    try:
        if not template or template == tokenizer.chat_template:
            return prompt_token_ids(tokenizer, conversation)
        text = tokenizer.apply_chat_template(conversation, chat_template=template, tokenize=False,
                                             add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    except Exception as error:  # noqa: BLE001 - a template raises what its author chose (TemplateError, ...)
        raise HTTPException(400, f"the chat template cannot render this conversation: {error}") from None


async def _stream(pane: Pane, prompt_ids: list[int], sampling: Sampling) -> AsyncIterator[str]:
    """Server-sent events: ``{"text": delta}`` as tokens come, then ``{"done": reason, "tokens": n}``."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue = asyncio.Queue()
    generation = pane.engine.submit(Generation(
        prompt_ids=prompt_ids, sampling=sampling, adapter=pane.model.adapter, stop_ids=pane.served.stop_ids,
        sink=lambda event: loop.call_soon_threadsafe(events.put_nowait, event),
        deadline=time.monotonic() + REQUEST_TIMEOUT_S))
    try:
        while True:
            try:
                # The engine ends a request at its deadline; this wait covers an engine that stopped under it (its
                # run unloaded to make room for another at that very moment).
                event = await asyncio.wait_for(events.get(), REQUEST_TIMEOUT_S)
            except asyncio.TimeoutError:
                yield _event({"done": "timeout", "tokens": None, "error": "no answer in time; ask again"})
                return
            if isinstance(event, Finished):
                yield _event({"done": event.reason, "tokens": event.completion_tokens, "error": event.error})
                return
            yield _event({"text": event})
    finally:
        generation.cancel()  # no-op once finished; frees the row when the page went away mid-answer


def _event(data: dict) -> str:
    return f"data: {dumps(data)}\n\n"
