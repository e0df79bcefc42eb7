"""The playground: chat with a run's model and its base side by side, tokens streamed to both panes.

Models come from the serving code: `tunesmith.serve.load_served` loads an adapter run on its base and serves the
base too (as ``base``), and the batching engine (`tunesmith.serve.Engine`, through `Engine.stream`) generates, so
both panes' requests decode in one batch. A full fine-tune has no base inside it: its base model is loaded beside it,
with an engine of its own. Nothing loads until the playground page asks (``POST /api/playground/load``, with the
session's CSRF token: loading changes what the process holds, so no GET and no other site's page may cause it);
the `KEEP_LOADED` runs used last stay loaded.

The conversation is rendered with the run's chat template and system prompt, both editable on the page: an
edited template renders this request only, through the tokenizer's own (sandboxed) Jinja.

Single-turn (the default of a classification run): each message is answered alone, as evaluation asked each test
row (the run's instruction, then the text), with no earlier turn in the prompt, so a message gets the same label
whatever came before it. Multi-turn (the default of the other tasks, or asked for): the pane's conversation so far.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from tunesmith.config.vocabulary import BASE_MODEL, METHODS, uses_adapter
from tunesmith.data.formats import classification_user_turn
from tunesmith.data.tokenize import prompt_token_ids
from tunesmith.run_dir import RunDir
from tunesmith.serve import ChatMessage, Engine, Finished, Sampling, Served, ServedModel, load_served
from tunesmith.ui.pages import Settings, find_run, render
from tunesmith.ui.runs import find_runs
from tunesmith.ui.runs_table import model_label
from tunesmith.web import HttpError, event_stream, server_sent_event

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
    method: str
    """The run's training method (`METHODS`), for the tuned pane's title."""

    @property
    def base_name(self) -> str:
        """The base model as the base pane is titled: a Hub id's or a folder's last part (SmolLM2-135M-Instruct)."""
        return model_label(self.base.served.base_model)[0]

    def titles(self, run: str) -> dict[str, dict[str, str]]:
        """Each pane's title (the model's real name) and what it is, in words."""
        what = (f"{METHODS[self.method]} adapter on {self.base_name}" if uses_adapter(self.method)
                else f"{METHODS[self.method]} of {self.base_name}")
        return {"tuned": {"name": run, "detail": f"tuned: {what}"},
                "base": {"name": self.base_name, "detail": f"base: {self.base.served.base_model}, untuned"}}

    def single_turn_default(self) -> bool:
        """Whether a message is answered alone unless the page asks otherwise: a classifier labels each message."""
        return self.tuned.model.task == "classification"

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
            return LoadedRun(tuned=tuned, base=Pane(served.models[BASE_MODEL], served, tuned.engine),
                             method=config.method)
        base = load_served([config.model.name])  # a full fine-tune replaced every weight: its base loads apart
        return LoadedRun(tuned=tuned, base=_pane(base, base.models[base.primary]), method=config.method)

    def close(self) -> None:
        with self._lock:
            while self._loaded:
                self._loaded.popitem()[1].stop()


def _pane(served: Served, model: ServedModel) -> Pane:
    return Pane(model, served, Engine(served.model, model.tokenizer, max_batch=8))


async def playground_of(request: Request) -> Playground:
    return request.app.state.playground


AppPlayground = Annotated[Playground, Depends(playground_of)]
"""A route's parameter of this type receives the app's `Playground`."""


class PlaygroundRequest(BaseModel):
    """One answer for one pane: the conversation so far (OpenAI's message shape, as `tunesmith serve` takes it)."""

    run: str
    side: Literal["tuned", "base"]
    messages: list[ChatMessage] = Field(min_length=1)
    system: str = ""
    template: str | None = None
    """An edited chat template; None (or the run's own) renders with the run's."""
    max_tokens: int = Field(128, ge=1)
    single_turn: bool | None = None
    """True: the last message alone is the prompt (as evaluation asked each row); False: the whole conversation;
    None: the run's default (single-turn for a classification run)."""


class LoadRequest(BaseModel):
    run: str = Field(max_length=1_000)


router = APIRouter()


@router.get("/playground")
def playground_page(request: Request, settings: Settings, run: str = ""):
    if not run:
        return render(request, "playground_pick.html", names=list(find_runs(settings.runs_dir)))
    find_run(settings, run)
    return render(request, "playground.html", run=run, max_tokens=settings.max_tokens)


@router.post("/api/playground/load")
async def playground_load(body: LoadRequest, settings: Settings, playground: AppPlayground):
    """Load the run's panes (once; a loaded run answers at once) and say what the page shows of them."""
    loaded = await run_in_threadpool(playground.load, find_run(settings, body.run))
    model = loaded.tuned.model
    return {"run": body.run, "tuned": model.name, "base": loaded.base.model.name, "task": model.task,
            "titles": loaded.titles(body.run), "single_turn": loaded.single_turn_default(),
            "instruction": _instruction(model), "system_prompt": model.system_prompt or "",
            "template": model.tokenizer.chat_template or ""}


@router.post("/api/playground/chat")
async def playground_chat(body: PlaygroundRequest, settings: Settings, playground: AppPlayground):
    loaded = await run_in_threadpool(playground.load, find_run(settings, body.run))
    pane = loaded.tuned if body.side == "tuned" else loaded.base
    single_turn = loaded.single_turn_default() if body.single_turn is None else body.single_turn
    # Both panes are asked as the run asks (its instruction, its task): the two answers differ by the model alone.
    conversation = playground_conversation(body, loaded.tuned.model, single_turn)
    # a long conversation or template takes a while to render and tokenize: off the event loop, so no other page waits
    prompt_ids = await run_in_threadpool(_prompt_ids, pane.model.tokenizer, conversation, body.template)
    room = pane.served.context_length - len(prompt_ids)
    if room < 1:
        raise HttpError(400, f"the conversation is {len(prompt_ids)} tokens, the model's context "
                             f"{pane.served.context_length}: clear the chat")
    sampling = Sampling(max_tokens=min(body.max_tokens, settings.max_tokens, room))
    return event_stream(_answer_events(pane, prompt_ids, sampling))


def playground_conversation(body: PlaygroundRequest, rules: ServedModel, single_turn: bool) -> list[dict]:
    """The conversation a pane's model is asked: the page's system prompt, then either the last message alone (in a
    classification run's user turn: its instruction, then the text) or every message so far."""
    system = [{"role": "system", "content": body.system}] if body.system.strip() else []
    messages = [message.as_message() for message in body.messages]
    if not single_turn:
        return system + messages
    last = messages[-1]
    if last["role"] != "user":
        raise HttpError(400, f"single-turn mode answers the last message alone, and it is the {last['role']}'s: "
                             f"end with a user message, or keep the history (multi-turn)")
    text = last["content"]
    if rules.task == "classification" and rules.data is not None and rules.labels:
        text = classification_user_turn(rules.data, rules.labels, text)
    return [*system, {"role": "user", "content": text}]


def _instruction(model: ServedModel) -> str:
    """What a single-turn message is put after on a classification run ("" when the text goes alone)."""
    if model.task != "classification" or model.data is None or not model.labels:
        return ""
    return classification_user_turn(model.data, model.labels, "").strip()


def _prompt_ids(tokenizer, conversation: list[dict], template: str | None) -> list[int]:
    try:
        if not template or template == tokenizer.chat_template:
            return prompt_token_ids(tokenizer, conversation)
        text = tokenizer.apply_chat_template(conversation, chat_template=template, tokenize=False,
                                             add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"]
    except Exception as error:  # noqa: BLE001 - a template raises what its author chose (TemplateError, ...)
        raise HttpError(400, f"the chat template cannot render this conversation: {error}") from None


async def _answer_events(pane: Pane, prompt_ids: list[int], sampling: Sampling) -> AsyncIterator[str]:
    """Server-sent events: ``{"text": delta}`` as tokens come, then ``{"done": reason, "tokens": n, "error": ...,
    "prompt_tokens": n}`` (the prompt's length shows whether earlier turns were in it). The page going away
    mid-answer closes the stream, which frees the row."""
    events = pane.engine.stream(prompt_ids, sampling, pane.model.adapter, pane.served.stop_ids,
                                deadline=time.monotonic() + REQUEST_TIMEOUT_S)
    async with aclosing(events):
        async for event in events:
            if isinstance(event, Finished):
                yield server_sent_event({"done": event.reason, "tokens": event.completion_tokens,
                                         "error": event.error, "prompt_tokens": len(prompt_ids)})
            else:
                yield server_sent_event({"text": event})
