"""A teacher's suggestions: an OpenAI-compatible chat endpoint (a stronger model, a hosted API, or `tunesmith serve`
of another run) asked for each item's label or answer, shown beside the item and kept for the agreement figures.

A suggestion is advice, never a label: every failure (the endpoint down, too slow, an HTTP error, a reply that
names none of the run's labels) is recorded on its item as ``teacher_error`` and the queue is made all the same.
A few requests run at once (`CONCURRENCY`): enough to hide a round trip, few enough not to flood the endpoint.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx

from tunesmith.review.endpoint import ChatEndpoint, EndpointError, ask_chat
from tunesmith.text import is_unicode

CONCURRENCY = 4
TIMEOUT_S = 60.0
MAX_TOKENS = {"classification": 16, "regression": 16, "generation": 512}
REPLY_KEPT = 200
"""Characters of an unusable reply kept in ``teacher_error``."""

CLASSIFY_INSTRUCTIONS = """Classify the user's text. Answer with exactly one of these labels and nothing else:
{labels}"""
REGRESSION_INSTRUCTIONS = "Answer with a single number for the user's text and nothing else."


@dataclass(frozen=True)
class Suggestion:
    """The teacher's value for one item, or why there is none."""

    value: str | None
    error: str | None


def suggest(items: Sequence, endpoint: ChatEndpoint, task: str, labels: list[str] | None,
            concurrency: int = CONCURRENCY, transport: httpx.BaseTransport | None = None) -> list[Suggestion]:
    """The teacher's suggestion for each of ``items`` (objects with ``input`` and ``messages``), in order; never
    raises for one item's failure. ``transport`` replaces the network (tests)."""
    with httpx.Client(timeout=endpoint.timeout_s, transport=transport) as client, \
            ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        return list(pool.map(lambda item: _ask(client, endpoint, item, task, labels), items))


def _ask(client: httpx.Client, endpoint: ChatEndpoint, item, task: str, labels: list[str] | None) -> Suggestion:
    if task == "classification":
        messages = [{"role": "system", "content": CLASSIFY_INSTRUCTIONS.format(labels="\n".join(labels or []))},
                    {"role": "user", "content": item.input}]
    elif task == "regression":
        messages = [{"role": "system", "content": REGRESSION_INSTRUCTIONS}, {"role": "user", "content": item.input}]
    else:
        messages = item.messages or [{"role": "user", "content": item.input}]
    try:
        reply = ask_chat(client, endpoint, messages, MAX_TOKENS.get(task, 512), "teacher",
                         "--teacher, --teacher-model and the API key")
    except EndpointError as error:
        return Suggestion(None, error.message)
    if not is_unicode(reply):
        return Suggestion(None, "the teacher's reply is not valid Unicode text (a lone surrogate)")
    if task == "classification":
        return parse_label(reply, labels or [])
    if task == "regression":
        return parse_number(reply)
    if not reply.strip():
        return Suggestion(None, "the teacher's reply is empty")
    return Suggestion(reply, None)


def parse_label(reply: str, labels: list[str]) -> Suggestion:
    """The label ``reply`` names: the whole reply (case, quotes and final punctuation aside), else the one label
    it mentions as a word. A reply that names none or several keeps its first characters in the error."""
    cleaned = reply.strip().strip("\"'`*.!").strip()
    by_folded = {label.casefold(): label for label in labels}
    if cleaned.casefold() in by_folded:
        return Suggestion(by_folded[cleaned.casefold()], None)
    mentioned = [label for label in labels
                 if re.search(rf"(?<!\w){re.escape(label)}(?!\w)", reply, flags=re.IGNORECASE)]
    if len(mentioned) == 1:
        return Suggestion(mentioned[0], None)
    what = "several of the labels" if mentioned else "none of the labels"
    return Suggestion(None, f"the teacher's reply names {what}: {_shown(reply)}")


def parse_number(reply: str) -> Suggestion:
    found = re.fullmatch(r"\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*\.?\s*", reply)
    if found is None:
        return Suggestion(None, f"the teacher's reply is not a number: {_shown(reply)}")
    return Suggestion(found.group(1), None)


def _shown(reply: str) -> str:
    text = " ".join(reply.split())
    return repr(text[:REPLY_KEPT] + ("…" if len(text) > REPLY_KEPT else ""))
