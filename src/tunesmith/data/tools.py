"""Tool-calling rows: the ``tools`` a row declares, the ``tool_calls`` of its assistant turns, as the OpenAI and
Hugging Face chat formats write them, normalized to one shape.

- A tool is ``{"type": "function", "function": {"name", "description", "parameters"}}`` (a bare
  ``{"name", "description", "parameters"}`` is wrapped); the ``tools`` value may be a list or a JSON string of
  one (as CSV and many Hub datasets store it).
- A call is ``{"type": "function", "function": {"name", "arguments"}}`` (plus its ``id`` when given); its
  arguments, a JSON string (OpenAI) or an object (Hugging Face), are kept as an object: chat templates write
  them with ``tojson``, and a string would be written twice quoted.
- Why the tools ride on the conversation (``TOOLS_KEY`` on its first message) and not beside it: every route
  that renders a conversation - training, evaluation's generation, serving, the gate - passes a list of
  messages, so the tools reach the chat template wherever the conversation goes (`tunesmith.data.tokenize`
  takes them off and hands them to ``apply_chat_template(..., tools=...)``).
"""

from __future__ import annotations

import json
from typing import Any

from tunesmith.data.example import Message
from tunesmith.data.rows import Row
from tunesmith.errors import DataError
from tunesmith.text import preview

TOOLS_KEY = "tools"
"""The key of a conversation's first message that holds the row's declared tools."""
MAX_TOOLS = 256
"""More tool definitions than this in one row is a mistake (a whole API dumped in), not a prompt to learn."""


def split_tools(messages: list[Message]) -> tuple[list[Message], list[dict] | None]:
    """``(messages without the tools key, the tools or None)``: what `apply_chat_template` takes."""
    if not messages or TOOLS_KEY not in messages[0]:
        return list(messages), None
    first = {key: value for key, value in messages[0].items() if key != TOOLS_KEY}
    return [first, *messages[1:]], messages[0][TOOLS_KEY]


def with_tools(messages: tuple[Message, ...], tools: list[dict] | None) -> tuple[Message, ...]:
    """``messages`` carrying ``tools`` on the first message (unchanged when there are none)."""
    if not tools or not messages:
        return messages
    return ({**messages[0], TOOLS_KEY: tools}, *messages[1:])


def conversation_tools(messages) -> list[dict]:
    """The tools a conversation declares ([] when none)."""
    return (messages[0].get(TOOLS_KEY) or []) if messages else []


def uses_tools(messages) -> bool:
    """True when the conversation declares tools, calls one, or holds a tool result."""
    return bool(conversation_tools(messages)) or any(
        m.get("tool_calls") or m.get("role") == "tool" for m in messages)


def calls_of(message: Message) -> list[tuple[str, dict]]:
    """``(name, arguments)`` of each call a (normalized) assistant message makes."""
    return [(call["function"]["name"], call["function"]["arguments"]) for call in message.get("tool_calls") or []]


def tool_name(tool: dict) -> str:
    return tool["function"]["name"]


# ---- normalizing a row's values ---------------------------------------------------------------------------------


def normalize_tools(value: Any, row: Row, key: str) -> list[dict]:
    """A row's declared tools in the OpenAI shape; a DataError naming FILE:LINE and the tool when malformed."""
    if isinstance(value, str):
        value = _json(value, row, key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise DataError(row.file, row.line, f"key {key!r} must be a list of tool definitions, got {preview(value)}")
    if len(value) > MAX_TOOLS:
        raise DataError(row.file, row.line, f"key {key!r} declares {len(value)} tools; at most {MAX_TOOLS} are read",
                        "declare only the tools this conversation may call")
    tools = []
    for index, tool in enumerate(value):
        where = f"{key}[{index}]"
        if not isinstance(tool, dict):
            raise DataError(row.file, row.line, f"{where} must be an object, got {preview(tool)}")
        function = tool.get("function", tool) if tool.get("type", "function") == "function" else None
        if not isinstance(function, dict):
            raise DataError(row.file, row.line, f"{where} must be a function tool "
                            "({type: function, function: {name, description, parameters}}), "
                            f"got {preview(tool)}")
        name = function.get("name")
        if not isinstance(name, str) or not name.strip():
            raise DataError(row.file, row.line, f"{where} has no function name (its keys: {_keys(function)})")
        parameters = function.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(parameters, dict):
            raise DataError(row.file, row.line, f"{where}.parameters must be a JSON schema object, "
                            f"got {preview(parameters)}")
        definition = {"name": name, "description": function.get("description") or "", "parameters": parameters}
        tools.append({"type": "function", "function": definition})
    return tools


def normalize_tool_calls(value: Any, row: Row, where: str) -> list[dict]:
    """An assistant turn's ``tool_calls`` in the normalized shape (arguments as an object)."""
    if not isinstance(value, list) or not value:
        raise DataError(row.file, row.line,
                        f"{where}.tool_calls must be a non-empty list of calls, got {preview(value)}")
    calls = []
    for index, call in enumerate(value):
        at = f"{where}.tool_calls[{index}]"
        function = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise DataError(row.file, row.line, f"{at} must be an object {{type: function, function: {{name, "
                            f"arguments}}}}, got {preview(call)}")
        name = function.get("name")
        if not isinstance(name, str) or not name.strip():
            raise DataError(row.file, row.line, f"{at} has no function name (its keys: {_keys(function)})")
        arguments = function.get("arguments", {})
        if isinstance(arguments, str):
            arguments = _json(arguments, row, f"{at}.function.arguments") if arguments.strip() else {}
        if not isinstance(arguments, dict):
            raise DataError(row.file, row.line, f"{at}.function.arguments must be a JSON object, got "
                            f"{preview(arguments)}", "write the arguments as {\"name\": value, ...}")
        normalized = {"type": "function", "function": {"name": name, "arguments": arguments}}
        if isinstance(call.get("id"), str):
            normalized["id"] = call["id"]
        calls.append(normalized)
    return calls


def tool_content(content: Any, row: Row, where: str) -> str:
    """A tool message's result as text: a string as is, any other JSON value written as JSON."""
    if isinstance(content, str):
        return content
    if content is None:
        raise DataError(row.file, row.line, f"{where}.content is missing: a tool message carries the tool's result")
    return json.dumps(content, ensure_ascii=False)


def _json(text: str, row: Row, where: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(row.file, row.line, f"{where} is not valid JSON ({error.msg} at character {error.pos}): "
                        f"{preview(text)}") from None
    except RecursionError:
        raise DataError(row.file, row.line, f"{where} nests JSON too deeply to read: {preview(text)}") from None


def _keys(value: dict) -> str:
    return ", ".join(map(str, value)) or "(none)"
