"""The data check of tool-calling rows: every call against the tools its row declares.

Flagged, each as ``FILE:LINE (why)``: a call to a function the row does not declare (or a row that declares no
tools at all), arguments that do not match the function's ``parameters`` JSON schema (jsonschema, the schema's
own draft, else 2020-12), a declared schema that is not a valid JSON schema, and a tool result whose
``tool_call_id`` answers none of the calls before it. Why a finding and not an unreadable row: the row can still
be trained, and a schema written loosely (a number sent as "3") may be what the user means; `data clean` or
``data.check.drop: [tool_call]`` removes such rows. Structural faults (arguments that are not JSON, a tool result
with no call before it) are unreadable rows (`tunesmith.data.formats`).
"""

from __future__ import annotations

from jsonschema import validators
from jsonschema.exceptions import SchemaError

from tunesmith.data.check.quality import Finding, finding
from tunesmith.data.example import Example
from tunesmith.data.tools import calls_of, conversation_tools, tool_name
from tunesmith.text import count_of, preview


def tool_call_problems(name: str, examples: list[Example]) -> Finding | None:
    flagged = [(example.location, why) for example in examples for why in _problems(example)[:1]]
    if not flagged:
        return None
    return finding("tool_call", name, f"{count_of(len(flagged), 'row')} with a tool call the declared tools do "
                   "not allow", flagged)


def _problems(example: Example) -> list[str]:
    """Every problem of one row's tool calls (the finder names the first of each row)."""
    messages = example.messages
    if not any(m.get("tool_calls") or m["role"] == "tool" for m in messages):
        return []
    tools = {tool_name(tool): tool["function"] for tool in conversation_tools(messages)}
    problems, call_ids = [], set()
    for index, message in enumerate(messages):
        if message["role"] == "tool":
            answered = message.get("tool_call_id")
            if answered and call_ids and answered not in call_ids:
                problems.append(f"turn {index}: tool result for call id {answered!r}, which no call before it has")
            continue
        call_ids.update(call["id"] for call in message.get("tool_calls") or [] if "id" in call)
        for function, arguments in calls_of(message):
            if function not in tools:
                declared = ", ".join(tools) or "none"
                problems.append(f"turn {index}: calls {function!r}, which the row does not declare "
                                f"(declared: {declared})")
                continue
            problem = _schema_problem(tools[function].get("parameters") or {}, arguments)
            if problem:
                problems.append(f"turn {index}: {function}({preview(arguments, 60)}): {problem}")
    return problems


def _schema_problem(schema: dict, arguments: dict) -> str | None:
    validator_class = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        validator_class.check_schema(schema)
    except SchemaError as error:
        return f"its parameters are not a valid JSON schema ({error.message})"
    error = next(iter(sorted(validator_class(schema).iter_errors(arguments), key=lambda e: list(e.path))), None)
    if error is None:
        return None
    at = "/".join(map(str, error.path))
    return f"arguments do not match the schema{f' at {at}' if at else ''}: {error.message}"
