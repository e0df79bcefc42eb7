"""Scoring generated tool calls against the reference calls of tool-calling rows.

A row is scored here when its reference (the last assistant turn) calls tools. The model's text is parsed in
these formats, tried in order:

- Hermes / Qwen 2.5 (and tunesmith's built-in ``chatml``): each call as ``<tool_call>{"name": ..., "arguments":
  {...}}</tool_call>`` (a missing closing tag at the end of the text is tolerated: generation may stop there);
- bare JSON: the whole reply is one call object or a list of them, with ``arguments`` or ``parameters`` (Llama
  3.1's JSON tool calls), optionally inside ``{"type": "function", "function": {...}}``.

Metrics (each a share of the scored rows, except the count):

- ``tool_call_rows``: rows whose reference calls tools;
- ``tool_call_valid_json``: the reply holds at least one call and every call parses as JSON with a name;
- ``tool_call_name_match``: the called function names equal the reference's, in order;
- ``tool_call_arguments_exact``: the calls (names and arguments) equal the reference's, in order;
- ``tool_call_argument_f1``: the mean over rows of the F1 of (function, argument, value) triples: partial credit
  for a call with some arguments right;
- ``tool_call_spurious`` (only when some rows answer in text): the share of those rows where the model called a
  tool anyway.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from tunesmith.data.example import Example
from tunesmith.data.tools import calls_of

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)

Call = tuple[str, dict]


@dataclass
class ParsedCalls:
    calls: list[Call]
    """Every call that parsed."""
    valid: bool
    """At least one call, and every call-shaped piece of the text parsed."""


def parse_tool_calls(text: str) -> ParsedCalls:
    """The calls in a generated reply (see the module docstring for the formats)."""
    pieces = _TAGGED.findall(text)
    if not pieces:
        stripped = text.strip()
        if not stripped.startswith(("{", "[")):
            return ParsedCalls([], False)
        pieces = [stripped]
    calls: list[Call] = []
    valid = True
    for piece in pieces:
        try:
            value = json.loads(piece)
        except (json.JSONDecodeError, RecursionError):  # a model can nest brackets past the parser's limit
            valid = False
            continue
        for item in value if isinstance(value, list) else [value]:
            call = _call(item)
            if call is None:
                valid = False
            else:
                calls.append(call)
    return ParsedCalls(calls, valid and bool(calls))


def _call(item) -> Call | None:
    if not isinstance(item, dict):
        return None
    if isinstance(item.get("function"), dict):
        item = item["function"]
    name = item.get("name")
    arguments = item.get("arguments", item.get("parameters", {}))
    if isinstance(arguments, str):  # OpenAI's arguments string, written inside the call
        try:
            arguments = json.loads(arguments)
        except (json.JSONDecodeError, RecursionError):
            return None
    if not isinstance(name, str) or not isinstance(arguments, dict):
        return None
    return name, arguments


def reference_calls(example: Example) -> list[Call]:
    """The calls of the row's reference (its last assistant turn); [] when it answers in text."""
    return calls_of(example.messages[-1])


def argument_f1(predicted: list[Call], reference: list[Call]) -> float:
    """F1 of the (function, argument, value) triples of two call lists (1.0 when both have no arguments and the
    names agree)."""
    ours, theirs = Counter(_triples(predicted)), Counter(_triples(reference))
    if not ours and not theirs:
        return float([name for name, _ in predicted] == [name for name, _ in reference])
    overlap = sum((ours & theirs).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(ours.values()), overlap / sum(theirs.values())
    return 2 * precision * recall / (precision + recall)


def _triples(calls: list[Call]) -> list[tuple[str, str, str]]:
    return [(name, key, json.dumps(value, sort_keys=True)) for name, arguments in calls
            for key, value in arguments.items()]


def has_tool_calls(examples: Sequence[Example]) -> bool:
    """True when some row's reference calls tools: the rows these metrics are for."""
    return any(reference_calls(example) for example in examples)


def tool_call_metrics(examples: Sequence[Example], predictions: Sequence[str]) -> dict:
    """The metrics of the module docstring over ``examples`` and the generated ``predictions``."""
    scored = valid = names = exact = 0
    f1 = 0.0
    text_rows = spurious = 0
    for example, prediction in zip(examples, predictions):
        reference = reference_calls(example)
        parsed = parse_tool_calls(prediction)
        if not reference:
            text_rows += 1
            spurious += bool(parsed.calls)
            continue
        scored += 1
        valid += parsed.valid
        names += [name for name, _ in parsed.calls] == [name for name, _ in reference]
        exact += parsed.calls == reference
        f1 += argument_f1(parsed.calls, reference)
    metrics: dict = {"tool_call_rows": scored}
    if scored:
        metrics.update({
            "tool_call_valid_json": valid / scored, "tool_call_name_match": names / scored,
            "tool_call_arguments_exact": exact / scored, "tool_call_argument_f1": f1 / scored,
        })
    if scored and text_rows:
        metrics["tool_call_spurious"] = spurious / text_rows
    return metrics
