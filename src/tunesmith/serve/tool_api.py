"""Tool calling as the OpenAI chat API speaks it: the ``tools`` a request offers, the ``tool_calls`` of earlier
assistant turns and the ``tool`` results, and the reply's calls.

The conversation is rendered as training rendered tool rows (`tunesmith.data.tools`: the tools ride on the first
message, the chat template writes them), so a run tuned on tool rows is asked exactly as it learned. The reply is
read back with the parser evaluation scores calls with (`tunesmith.evaluate.tool_calls.parse_tool_calls`: Hermes /
Qwen ``<tool_call>`` blocks or bare JSON): when every call-shaped piece parses, the answer is ``tool_calls`` with
``finish_reason: tool_calls``; otherwise it is the text, as the model wrote it.

``tool_choice`` takes ``auto`` (the default when tools are offered) and ``none`` (the tools are not shown to the
model). ``required`` and a named function are refused with a 400: they need constrained decoding, and an answer that
ignored them would look like one that obeyed.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tunesmith.data.tools import MAX_TOOLS
from tunesmith.evaluate.tool_calls import parse_tool_calls

MAX_TOOL_NAME = 64
"""OpenAI's limit on a function name."""


class ToolFunction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=MAX_TOOL_NAME)
    description: str = ""
    parameters: dict = Field(default_factory=lambda: {"type": "object", "properties": {}})


class Tool(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["function"]
    function: ToolFunction

    def as_definition(self) -> dict:
        """The tool in the shape `tunesmith.data.tools` normalizes rows to."""
        return {"type": "function", "function": self.function.model_dump()}


class CalledFunction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1, max_length=MAX_TOOL_NAME)
    arguments: str | dict = "{}"
    """OpenAI sends a JSON string; an object is taken too (Hugging Face's shape)."""

    @field_validator("arguments")
    @classmethod
    def _json_object(cls, arguments: str | dict) -> str | dict:
        if isinstance(arguments, str):
            try:
                value = json.loads(arguments) if arguments.strip() else {}
            except (json.JSONDecodeError, RecursionError):
                raise ValueError("must be a JSON object written as a string, e.g. '{\"city\": \"Paris\"}'") from None
            if not isinstance(value, dict):
                raise ValueError("must be a JSON object (the function's named arguments)")
        return arguments

    def argument_object(self) -> dict:
        if isinstance(self.arguments, dict):
            return self.arguments
        return json.loads(self.arguments) if self.arguments.strip() else {}


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = Field(None, max_length=256)
    type: Literal["function"] = "function"
    function: CalledFunction

    def as_call(self) -> dict:
        """The call as training rows hold it (arguments as an object: templates write them with ``tojson``)."""
        call = {"type": "function", "function": {"name": self.function.name,
                                                 "arguments": self.function.argument_object()}}
        return {**call, "id": self.id} if self.id else call


class ToolChoice(BaseModel):
    """The request's tool settings (fields of `ChatRequest`)."""

    tools: list[Tool] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: Any = None
    parallel_tool_calls: bool | None = None

    @field_validator("tool_choice")
    @classmethod
    def _auto_or_none(cls, choice: Any) -> Any:
        if choice not in (None, "auto", "none"):
            raise ValueError("only 'auto' and 'none' are supported (forcing a call needs constrained decoding, which "
                             "tunesmith serve does not do)")
        return choice

    def offered_tools(self) -> list[dict]:
        """The tool definitions the model is shown ([] when none are offered or ``tool_choice`` is ``none``)."""
        if not self.tools or self.tool_choice == "none":
            return []
        return [tool.as_definition() for tool in self.tools]


def reply_tool_calls(text: str) -> list[dict] | None:
    """The reply's calls in the API's shape (arguments as a JSON string, a fresh id each), or None when the reply
    is text: no call, or a call-shaped piece that does not parse."""
    parsed = parse_tool_calls(text)
    if not parsed.valid:
        return None
    return [{"id": f"call_{uuid.uuid4().hex[:24]}", "type": "function",
             "function": {"name": name, "arguments": json.dumps(arguments, ensure_ascii=False)}}
            for name, arguments in parsed.calls]


def stream_deltas(calls: list[dict]) -> list[dict]:
    """The calls as one streamed delta (each call whole, with its ``index``), as OpenAI clients merge them."""
    return [{"index": index, **call} for index, call in enumerate(calls)]
