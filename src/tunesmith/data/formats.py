"""Row formats: turn one row of a user's file into an `Example` (a conversation ending with the assistant turn).

Formats and the fields they read (``data.columns`` maps a field to the user's key, e.g. ``{label: label_text}``;
the manual's table (docs/data.md) is generated from `tunesmith.config.vocabulary.ROW_FORMATS`):

- ``alpaca``: instruction, input (optional), output
- ``messages``: messages (a list of {role, content}, ending with an assistant turn). This is also OpenAI's
  fine-tuning JSONL: an assistant turn may carry ``weight`` 0 or 1; a turn with weight 0 is kept as context
  (its message dict keeps ``"weight": 0``) and gets no loss. Tool calling, as OpenAI and Hugging Face write it:
  an optional ``tools`` field (the declared functions), assistant turns with ``tool_calls`` (content may then be
  empty or null) and ``tool`` turns with the results (`tunesmith.data.tools` normalizes them).
- ``sharegpt``: conversations (a list of {from, value} turns, from = human/user, gpt/assistant/model, system,
  or for tool calling function_call (value: a JSON call {name, arguments}) and observation/tool (its result);
  {role, content} turns are read too)
- ``prompt_completion``: prompt, completion
- ``classification``: text, label (a name, or an int index into ``data.label_names``)
- ``regression``: text, target (a number; also read from ``score``, ``value`` or a float ``label``)
- ``text``: text (plain text to learn in full)
- ``preference``: prompt, chosen, rejected. The prompt is a string (one user turn) or a list of {role, content}
  turns ending before the answers; each answer is a string, an assistant message, or a list of one assistant
  message (TRL's conversational shape). Without a prompt, chosen and rejected may be whole conversations that
  share every turn before their answers (TRL's implicit prompt). The example's last turn is the chosen answer and
  `Example.rejected` the rejected one; an empty answer is read (the data check reports it as ``empty_side``).

Conversations may have many turns: every assistant turn is kept and learned (except weight-0 ones); a user turn
comes before the first assistant turn (a reply needs a prompt), and the last turn must be an assistant turn to
learn. Every format also reads an optional per-row ``system`` field. SST-2's ``sentence`` and STS-B's
``sentence1``/``sentence2`` are understood as the text without a mapping.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any, get_args

from tunesmith.config.schema import DataConfig
from tunesmith.config.vocabulary import RowFormat
from tunesmith.data.example import Example, Message
from tunesmith.data.fields import (
    infer_format_and_labels,
    key_of,
    label_of,
    optional_string,
    required_string,
    required_value,
    target_of,
    target_text,
    text_key,
)
from tunesmith.data.rows import OnError, Row
from tunesmith.data.tools import normalize_tool_calls, normalize_tools, tool_content, with_tools
from tunesmith.errors import DataError
from tunesmith.text import preview

ROLES = ("system", "user", "assistant", "tool")
SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
    "system": "system", "function_call": "assistant", "observation": "tool", "tool": "tool",
}
"""ShareGPT's `from` values and the role each one is."""

PAIR_SIDES = ("chosen", "rejected")

DEFAULT_CLASSIFICATION_INSTRUCTION = "Classify the following text. Answer with one of: {labels}."
DEFAULT_REGRESSION_INSTRUCTION = "Rate the following text. Answer with a number."

Converter = Callable[[Row, DataConfig, "list[str] | None"], Example]


# ---- one converter per format -----------------------------------------------------------------------------------


def _alpaca(row: Row, config: DataConfig, labels: list[str] | None) -> Example:
    user = required_string(row, "instruction", config.columns, "alpaca")
    extra = optional_string(row, "input", config.columns)
    if extra.strip():
        user = f"{user}\n\n{extra}"
    return _conversation(row, config, user, required_string(row, "output", config.columns, "alpaca", allow_empty=True))


def _messages(row: Row, config: DataConfig, labels: list[str] | None) -> Example:
    return _with_row_tools(row, config, _with_system(_conversation_turns(row, config.columns, "messages"),
                                                     _system_prompt(row, config)))


def _sharegpt(row: Row, config: DataConfig, labels: list[str] | None) -> Example:
    return _with_row_tools(row, config, _with_system(_conversation_turns(row, config.columns, "sharegpt"),
                                                     _system_prompt(row, config)))


def _with_row_tools(row: Row, config: DataConfig, example: Example) -> Example:
    """The example carrying the row's declared ``tools`` (see `tunesmith.data.tools`), when it has any."""
    key = key_of("tools", config.columns)
    tools = normalize_tools(row.data.get(key), row, key)
    return replace(example, messages=with_tools(example.messages, tools)) if tools else example


def _prompt_completion(row: Row, config: DataConfig, labels: list[str] | None) -> Example:
    prompt = required_string(row, "prompt", config.columns, "prompt_completion")
    completion = required_string(row, "completion", config.columns, "prompt_completion", allow_empty=True)
    return _conversation(row, config, prompt, completion)


def _classification(row: Row, config: DataConfig, labels: list[str] | None) -> Example:
    if labels is None:
        raise ValueError("classification rows need the task's label set (see fields.infer_format_and_labels)")
    label = label_of(row, config)
    if label not in labels:
        raise DataError(row.file, row.line, f"label {label!r} is not one of the labels: {', '.join(labels)}")
    user = classification_user_turn(config, labels, _text_of(row, config, "classification"))
    return _conversation(row, config, user, label, label=label)


def classification_user_turn(config: DataConfig, labels: list[str], text: str) -> str:
    """The user turn of a classification row with ``text``: the instruction naming the labels, then the text. The
    server's `/v1/classify` builds its prompts here, so they are the prompts training and evaluation used."""
    instruction = _instruction(config, DEFAULT_CLASSIFICATION_INSTRUCTION)
    # str.replace, not str.format: a user instruction may contain other braces (JSON examples, code).
    return _with_instruction(instruction.replace("{labels}", ", ".join(labels)), text)


def _regression(row: Row, config: DataConfig, labels: list[str] | None) -> Example:
    target = target_of(row, config)
    user = regression_user_turn(config, _text_of(row, config, "regression"))
    return _conversation(row, config, user, target_text(target), target=target)


def regression_user_turn(config: DataConfig, text: str) -> str:
    """The user turn of a regression row with ``text``: the instruction, then the text."""
    return _with_instruction(_instruction(config, DEFAULT_REGRESSION_INSTRUCTION), text)


def text_of_user_turn(user_turn: str, fmt: str, config: DataConfig, labels: list[str] | None) -> str:
    """The row's own text inside ``user_turn``, a user turn that rows of format ``fmt`` make: for classification
    and regression rows the turn without the instruction put before the text (the same on every row); other
    formats add no instruction, so their turn is the text."""
    if fmt == "classification":
        instruction = classification_user_turn(config, labels or [], "")
    elif fmt == "regression":
        instruction = regression_user_turn(config, "")
    else:
        return user_turn
    return user_turn.removeprefix(instruction)


def _text(row: Row, config: DataConfig, labels: list[str] | None) -> Example:
    # An empty user turn rather than no user turn: chat templates cannot render an empty prompt, and the loss
    # still covers all of the text, which is the whole assistant turn.
    return _conversation(row, config, "", _text_of(row, config, "text"))


def _preference(row: Row, config: DataConfig, labels: list[str] | None) -> Example:
    columns = config.columns
    if key_of("prompt", columns) in row.data or not _whole_conversations(row, columns):
        prompt = _pair_prompt(row, columns)
        chosen, rejected = (_pair_answer(row, columns, side) for side in PAIR_SIDES)
    else:
        prompt, chosen, rejected = _implicit_prompt(row, columns)
    example = Example(messages=(*prompt, chosen), location=row.location, rejected=rejected)
    return _with_system(example, _system_prompt(row, config))


CONVERTERS: dict[str, Converter] = {
    "alpaca": _alpaca, "messages": _messages, "sharegpt": _sharegpt, "prompt_completion": _prompt_completion,
    "classification": _classification, "regression": _regression, "text": _text, "preference": _preference,
}
"""One converter per `RowFormat` (a test keeps the two in step)."""


def to_example(row: Row, fmt: str, config: DataConfig, labels: list[str] | None) -> Example:
    """Turn one row into an `Example`. ``labels`` is the label set of a classification task (required there:
    the default instruction names every label); other formats ignore it."""
    convert = CONVERTERS.get(fmt)
    if convert is None:
        raise DataError(row.file, row.line, f"unknown format {fmt!r}; known formats: {', '.join(get_args(RowFormat))}")
    return convert(row, config, labels)


def convert_rows(
    rows_by_split: dict[str, list[Row]], config: DataConfig, on_error: OnError | None = None,
    fmt: str | None = None, labels: list[str] | None = None,
) -> tuple[dict[str, list[Example]], str, list[str] | None]:
    """Convert every split with one format and one label set: ``(examples by split, format, labels)``.

    ``fmt`` and ``labels`` default to `infer_format_and_labels` over every row given (mixed sources pass the
    label set they share). Without ``on_error`` the first bad row raises its `DataError`; with it, a bad row is
    passed to it and left out.
    """
    if fmt is None:
        all_rows = [row for rows in rows_by_split.values() for row in rows]
        fmt, labels = infer_format_and_labels(all_rows, config, lenient=on_error is not None)
    examples = {}
    for split, rows in rows_by_split.items():
        converted = []
        for row in rows:
            try:
                converted.append(to_example(row, fmt, config, labels))
            except DataError as error:
                if on_error is None:
                    raise
                on_error(error)
        examples[split] = converted
    return examples, fmt, labels


# ---- pieces of a conversation -----------------------------------------------------------------------------------


def _text_of(row: Row, config: DataConfig, fmt: str) -> str:
    where = text_key(row, config.columns)
    if isinstance(where, tuple):
        first, second = (required_string(row, key, {}, fmt) for key in where)
        return f"Sentence 1: {first}\nSentence 2: {second}"
    return required_string(row, "text", {**config.columns, "text": where} if where else config.columns, fmt)


def _conversation(row: Row, config: DataConfig, user: str, answer: str, **fields) -> Example:
    messages = ({"role": "user", "content": user}, {"role": "assistant", "content": answer})
    example = Example(messages=messages, location=row.location, **fields)
    return _with_system(example, _system_prompt(row, config))


def _system_prompt(row: Row, config: DataConfig) -> str | None:
    """The row's own `system` field wins over ``data.system_prompt``."""
    return optional_string(row, "system", config.columns) or config.system_prompt


def _with_system(example: Example, system: str | None) -> Example:
    if not system or example.messages[0]["role"] == "system":
        return example
    return replace(example, messages=({"role": "system", "content": system}, *example.messages))


def _conversation_turns(row: Row, columns: dict[str, str], fmt: str) -> Example:
    field = "conversations" if fmt == "sharegpt" else "messages"
    key = key_of(field, columns)
    turns = required_value(row, field, columns, fmt)
    if not isinstance(turns, list) or not turns:
        shape = "{from, value}" if fmt == "sharegpt" else "{role, content}"
        raise DataError(
            row.file, row.line, f"key {key!r} must be a non-empty list of {shape} objects, got {preview(turns)}",
        )
    messages = tuple(_message(row, key, index, turn, fmt) for index, turn in enumerate(turns))
    first_reply = next(index for index, message in enumerate(messages + ({"role": "assistant"},))
                       if message["role"] == "assistant")
    if first_reply < len(messages) and not any(m["role"] == "user" for m in messages[:first_reply]):
        raise DataError(
            row.file, row.line, f"{key}[{first_reply}] is an assistant turn with no user turn before it",
            "a reply needs a prompt: add the user turn it answers, or use data.format: text to learn plain text",
        )
    _tool_results_follow_calls(row, key, messages)
    last = messages[-1]
    if last["role"] != "assistant":
        raise DataError(
            row.file, row.line,
            f"conversation ends with a {last['role']} turn; it must end with the assistant turn to learn",
            "drop the trailing turn or add the assistant reply",
        )
    if last.get("weight") == 0:
        raise DataError(
            row.file, row.line, f"the last turn of {key!r} has weight 0, so the row has nothing to learn at its end",
            "give the last assistant turn weight 1, or drop the row",
        )
    return Example(messages=messages, location=row.location)


def _message(row: Row, key: str, index: int, turn: Any, fmt: str) -> Message:
    """One turn as ``{role, content}`` (plus ``"weight": 0`` for an assistant turn that is context only, the
    ``tool_calls`` of an assistant turn that calls tools, the ``tool_call_id``/``name`` of a tool result)."""
    where = f"{key}[{index}]"
    if not isinstance(turn, dict):
        raise DataError(
            row.file, row.line, f"{where} must be an object with role and content, got {preview(turn)}"
        )
    calls = turn.get("tool_calls")
    if fmt == "sharegpt" and "role" not in turn:  # ShareGPT's {from, value}
        speaker, content = turn.get("from"), turn.get("value")
        role = SHAREGPT_ROLES.get(speaker) if isinstance(speaker, str) else None
        if role is None:
            raise DataError(
                row.file, row.line,
                f"{where} has from {preview(speaker)}; allowed: {', '.join(SHAREGPT_ROLES)}",
            )
        text_field = "value"
        if speaker == "function_call":  # glaive / ShareGPT tool calling: the value is the call as JSON
            call = content if isinstance(content, dict) else _call_json(row, where, content)
            calls, content = [{"function": call}], ""
    else:
        role, content, text_field = turn.get("role"), turn.get("content"), "content"
        if role not in ROLES:
            keys = ", ".join(map(str, turn)) or "(none)"
            raise DataError(
                row.file, row.line,
                f"{where} has role {preview(role)}; allowed roles: {', '.join(ROLES)} (its keys: {keys})",
            )
    if calls is not None and role != "assistant":
        raise DataError(row.file, row.line, f"{where} is a {role} turn with tool_calls; only assistant turns call "
                        "tools")
    if role == "tool":
        content = tool_content(content, row, f"{where}")
    elif calls is not None and content is None:
        content = ""  # OpenAI writes `content: null` beside tool calls
    if not isinstance(content, str):
        raise DataError(row.file, row.line, f"{where}.{text_field} must be a string, got {type(content).__name__}")
    message: Message = {"role": role, "content": content}
    if calls is not None:
        message["tool_calls"] = normalize_tool_calls(calls, row, where)
    if role == "tool":
        message.update({name: turn[name] for name in ("tool_call_id", "name") if isinstance(turn.get(name), str)})
    if "weight" in turn:
        weight = turn["weight"]
        if role != "assistant":
            raise DataError(row.file, row.line, f"{where} is a {role} turn with a weight; only assistant turns "
                            "carry one", "remove the weight: only assistant turns are learned")
        if isinstance(weight, bool) or weight not in (0, 1):
            raise DataError(row.file, row.line, f"{where}.weight must be 0 or 1, got {preview(weight)}",
                            "0 keeps the turn as context without loss, 1 (the default) learns it")
        if weight == 0:
            message["weight"] = 0
    return message


def _call_json(row: Row, where: str, value: Any) -> Any:
    try:
        return json.loads(value) if isinstance(value, str) else value
    except json.JSONDecodeError as error:
        raise DataError(row.file, row.line, f"{where}.value of a function_call turn is not valid JSON ({error.msg} "
                        f"at character {error.pos}): {preview(value)}") from None
    except RecursionError:
        raise DataError(row.file, row.line, f"{where}.value nests JSON too deeply to read") from None


def _tool_results_follow_calls(row: Row, key: str, messages: tuple[Message, ...]) -> None:
    """A tool result answers a call: it follows an assistant turn with tool_calls (or another result)."""
    calling = False
    for index, message in enumerate(messages):
        if message["role"] == "tool" and not calling:
            raise DataError(row.file, row.line, f"{key}[{index}] is a tool result with no assistant tool call "
                            "before it", "put the assistant turn whose tool_calls it answers before it")
        calling = bool(message.get("tool_calls")) or (calling and message["role"] == "tool")


# ---- pieces of a preference pair --------------------------------------------------------------------------------


def _pair_prompt(row: Row, columns: dict[str, str]) -> tuple[Message, ...]:
    """The turns both answers reply to: a string is one user turn; a list is read as `messages` turns are."""
    key = key_of("prompt", columns)
    value = required_value(row, "prompt", columns, "preference")
    if isinstance(value, str):
        if not value.strip():
            raise DataError(row.file, row.line, f"key {key!r} is empty (format preference)")
        return ({"role": "user", "content": value},)
    if not isinstance(value, list) or not value:
        raise DataError(row.file, row.line, f"key {key!r} must be a string or a non-empty list of {{role, content}} "
                        f"objects, got {type(value).__name__} {preview(value)}")
    turns = tuple(_message(row, key, index, turn, "messages") for index, turn in enumerate(value))
    if not any(turn["role"] == "user" for turn in turns):
        raise DataError(row.file, row.line, f"key {key!r} has no user turn", "a prompt needs the user turn the "
                        "answers reply to")
    if turns[-1]["role"] == "assistant":
        raise DataError(row.file, row.line, f"key {key!r} ends with an assistant turn; a prompt ends before the "
                        "answers", "put the answers in chosen and rejected, not in the prompt")
    _tool_results_follow_calls(row, key, turns)
    return turns


def _pair_answer(row: Row, columns: dict[str, str], side: str) -> Message:
    """One answer of a pair: a string, an assistant message, or a list of one (TRL's conversational shape)."""
    key = key_of(side, columns)
    value = required_value(row, side, columns, "preference")
    if isinstance(value, list):
        if len(value) != 1:
            raise DataError(row.file, row.line, f"key {key!r} must hold one assistant message, got a list of "
                            f"{len(value)}", "the turns before the answer go in prompt")
        return _answer_message(row, f"{key}[0]", value[0])
    return _answer_message(row, key, value)


def _answer_message(row: Row, where: str, value: Any) -> Message:
    if isinstance(value, str):
        return {"role": "assistant", "content": value}
    if not isinstance(value, dict):
        raise DataError(row.file, row.line, f"{where} must be a string or an assistant message, got "
                        f"{type(value).__name__} {preview(value)}")
    role, content = value.get("role", "assistant"), value.get("content")
    if role != "assistant":
        raise DataError(row.file, row.line, f"{where} has role {preview(role)}; an answer is an assistant turn")
    if value.get("tool_calls"):
        raise DataError(row.file, row.line, f"{where} calls tools; the answers of a preference pair are text",
                        "leave the pair out, or write its answers as text")
    if not isinstance(content, str):
        raise DataError(row.file, row.line, f"{where}.content must be a string, got {type(content).__name__}")
    return {"role": "assistant", "content": content}


def _whole_conversations(row: Row, columns: dict[str, str]) -> bool:
    """Both answers are conversations of several turns (TRL's implicit prompt), not answers alone."""
    return all(isinstance(row.data.get(key_of(side, columns)), list) and len(row.data[key_of(side, columns)]) > 1
               for side in PAIR_SIDES)


def _implicit_prompt(row: Row, columns: dict[str, str]) -> tuple[tuple[Message, ...], Message, Message]:
    """The prompt both conversations share (every turn before their last), and their last turns as the answers."""
    chosen_key, rejected_key = (key_of(side, columns) for side in PAIR_SIDES)
    chosen = [_message(row, chosen_key, index, turn, "messages") for index, turn in enumerate(row.data[chosen_key])]
    rejected = [_message(row, rejected_key, index, turn, "messages")
                for index, turn in enumerate(row.data[rejected_key])]
    if chosen[:-1] != rejected[:-1]:
        raise DataError(row.file, row.line, f"{chosen_key!r} and {rejected_key!r} differ before their last turns; "
                        "the two answers of a pair reply to one prompt", "give the prompt as its own key")
    prompt = tuple(chosen[:-1])
    if not any(turn["role"] == "user" for turn in prompt):
        raise DataError(row.file, row.line, f"{chosen_key!r} has no user turn before its answer",
                        "a prompt needs the user turn the answers reply to")
    _tool_results_follow_calls(row, chosen_key, prompt)
    last = len(chosen) - 1
    answers = (_answer_message(row, f"{chosen_key}[{last}]", chosen[-1]),
               _answer_message(row, f"{rejected_key}[{len(rejected) - 1}]", rejected[-1]))
    return prompt, *answers


def _instruction(config: DataConfig, default: str) -> str:
    """`data.instruction`, the default when unset; an empty string means "the text alone" (the system
    prompt can carry the task, which keeps every row shorter)."""
    return default if config.instruction is None else config.instruction


def _with_instruction(instruction: str, text: str) -> str:
    return f"{instruction}\n\n{text}" if instruction else text
