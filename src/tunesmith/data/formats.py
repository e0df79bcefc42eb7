"""Row formats: turn one row of a user's file into an `Example` (a conversation ending with the assistant turn).

Formats and the fields they read (``data.columns`` maps a field to the user's key, e.g. ``{label: label_text}``):

- ``alpaca``: instruction, input (optional), output
- ``messages``: messages (a list of {role, content}, ending with an assistant turn). This is also OpenAI's
  fine-tuning JSONL: an assistant turn may carry ``weight`` 0 or 1; a turn with weight 0 is kept as context
  (its message dict keeps ``"weight": 0``) and gets no loss.
- ``sharegpt``: conversations (a list of {from, value} turns, from = human/user, gpt/assistant/model or
  system; {role, content} turns are read too)
- ``prompt_completion``: prompt, completion
- ``classification``: text, label (a name, or an int index into ``data.label_names``)
- ``regression``: text, target (a number; also read from ``score``, ``value`` or a float ``label``)
- ``text``: text (plain text to learn in full)

Conversations may have many turns: every assistant turn is kept and learned (except weight-0 ones); the last
turn must be an assistant turn to learn. Every format also reads an optional per-row ``system`` field. SST-2's ``sentence`` and STS-B's
``sentence1``/``sentence2`` are understood as the text without a mapping.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from tunesmith.config.schema import DataConfig
from tunesmith.data.example import Example, Message
from tunesmith.data.readers import Row
from tunesmith.errors import DataError

FORMATS = ("alpaca", "messages", "sharegpt", "prompt_completion", "classification", "regression", "text")
ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {
    "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
    "system": "system",
}
"""ShareGPT's `from` values and the role each one is."""
TARGET_KEYS = ("target", "score", "value")
"""Keys read as a regression target when ``data.columns`` does not map ``target``."""

DEFAULT_CLASSIFICATION_INSTRUCTION = "Classify the following text. Answer with one of: {labels}."
DEFAULT_REGRESSION_INSTRUCTION = "Rate the following text. Answer with a number."

_DECIMAL = re.compile(r"\s*[-+]?(\d+\.\d*|\.\d+)([eE][-+]?\d+)?\s*")

_MISSING = object()


# ---- reading fields -----------------------------------------------------------------------------------------


def _key(field: str, columns: dict[str, str]) -> str:
    return columns.get(field, field)


def _has(row: Row, field: str, columns: dict[str, str]) -> bool:
    return _key(field, columns) in row.data


def _value(row: Row, field: str, columns: dict[str, str], fmt: str) -> Any:
    """The value of a required field; a missing key or a null names the key and the keys the row has."""
    key = _key(field, columns)
    value = row.data.get(key, _MISSING)
    if value is _MISSING:
        mapped = f" (data.columns maps `{field}` to it)" if key != field else ""
        raise DataError(
            row.file, row.line, f"missing key {key!r}{mapped} for format {fmt}; the row has keys: {_keys(row)}",
            "map your key with data.columns, e.g. {" + field + ": your_key}" if not mapped else None,
        )
    if value is None:
        raise DataError(row.file, row.line, f"key {key!r} is null (format {fmt})")
    return value


def _string(row: Row, field: str, columns: dict[str, str], fmt: str, allow_empty: bool = False) -> str:
    value = _value(row, field, columns, fmt)
    key = _key(field, columns)
    if not isinstance(value, str):
        raise DataError(
            row.file, row.line, f"key {key!r} must be a string, got {type(value).__name__} {_preview(value)}"
        )
    if not allow_empty and not value.strip():
        raise DataError(row.file, row.line, f"key {key!r} is empty (format {fmt})")
    return value


def _optional_string(row: Row, field: str, columns: dict[str, str]) -> str:
    """An optional text field: absent or null reads as ""."""
    value = row.data.get(_key(field, columns))
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(
            row.file, row.line, f"key {_key(field, columns)!r} must be a string, got {type(value).__name__}"
        )
    return value


def _keys(row: Row) -> str:
    return ", ".join(map(str, row.data)) or "(none)"


def _preview(value: Any, limit: int = 60) -> str:
    """A value as it would be written in Python, cut short: an error line should not quote a whole document."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---- format detection ---------------------------------------------------------------------------------------


def detect_format(row: Row, columns: dict[str, str]) -> str:
    """The format of a file, guessed from the keys of its first row (after the ``data.columns`` mapping)."""
    if _has(row, "messages", columns):
        return "messages"
    if _has(row, "conversations", columns):
        return "sharegpt"
    if _has(row, "instruction", columns) and _has(row, "output", columns):
        return "alpaca"
    if _has(row, "prompt", columns) and _has(row, "completion", columns):
        return "prompt_completion"
    if _text_key(row, columns) is not None:
        if _target_key(row, columns) is not None:
            return "regression"
        if "label" in columns or "label" in row.data:
            return "regression" if _is_fractional(row.data.get(_key("label", columns))) else "classification"
        return "text"
    raise DataError(
        row.file, row.line, f"cannot detect the data format from the keys: {_keys(row)}",
        f"set data.format to one of {', '.join(FORMATS)}, or map your keys with data.columns",
    )


def _text_key(row: Row, columns: dict[str, str]) -> str | tuple[str, str] | None:
    """Where the row's text is: the `text` field, SST-2's `sentence`, or STS-B's sentence pair."""
    if "text" in columns or "text" in row.data:
        return _key("text", columns)
    if "sentence" in row.data:
        return "sentence"
    if "sentence1" in row.data and "sentence2" in row.data:
        return ("sentence1", "sentence2")
    return None


def _target_key(row: Row, columns: dict[str, str]) -> str | None:
    """The key of a regression target: the mapped `target` (present or not: the mapping says what the user
    means), else the first of `target`/`score`/`value` the row has."""
    if "target" in columns:
        return columns["target"]
    return next((key for key in TARGET_KEYS if key in row.data), None)


def _is_fractional(value: Any) -> bool:
    """True for a value written with a decimal point: a float (even 5.0: STS-B's first score) or "3.8" (CSV)."""
    if isinstance(value, float):
        return True
    return isinstance(value, str) and _DECIMAL.fullmatch(value) is not None


# ---- labels and targets ---------------------------------------------------------------------------------------


def label_of(row: Row, config: DataConfig) -> str:
    """The label name of a classification row: its string label, or its int label mapped by ``label_names``."""
    key = _key("label", config.columns)
    value = _value(row, "label", config.columns, "classification")
    names = config.label_names
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(
            row.file, row.line,
            f"label {key!r} must be a string or an integer, got {type(value).__name__} {_preview(value)}",
        )
    if isinstance(value, str):
        if not value.strip():
            raise DataError(row.file, row.line, f"label {key!r} is empty")
        if names is None or value in names:
            return value
        if not value.strip().lstrip("-").isdigit():
            raise DataError(
                row.file, row.line, f"label {_preview(value)} is not one of data.label_names: {', '.join(names)}"
            )
        value = int(value)  # an index written as text, as CSV writes every value
    if names is None:
        return str(value)
    if not 0 <= value < len(names):
        raise DataError(
            row.file, row.line,
            f"label {value} has no name: data.label_names has {len(names)} names (indices 0..{len(names) - 1})",
        )
    return names[value]


def target_of(row: Row, config: DataConfig) -> float:
    """The number of a regression row, from the mapped `target`, else `target`/`score`/`value`/`label`."""
    key = _target_key(row, config.columns) or _key("label", config.columns)
    value = row.data.get(key)
    if value is None:
        what = "is null" if key in row.data else "is missing"
        raise DataError(
            row.file, row.line,
            f"regression target {what}: looked for {key!r}; the row has keys: {_keys(row)}",
            "map your key with data.columns, e.g. {target: your_key}",
        )
    if isinstance(value, bool):
        raise DataError(row.file, row.line, f"target {key!r} must be a number, got a boolean")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(row.file, row.line, f"target {key!r} must be a number, got {_preview(value)}") from None
    if not math.isfinite(number):
        raise DataError(row.file, row.line, f"target {key!r} must be a finite number, got {_preview(value)}")
    return number


def format_number(number: float) -> str:
    """The compact text the model learns for a regression target: 3.8 → "3.8", 4.0 → "4"."""
    if number.is_integer():
        return str(int(number))
    return f"{number:.6g}"


def sort_labels(labels: set[str]) -> list[str]:
    """Labels in a stable order: numerically when all are integers (so "10" comes after "2"), else by name."""
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


# ---- row → Example --------------------------------------------------------------------------------------------


def to_example(row: Row, fmt: str, config: DataConfig, labels: list[str] | None) -> Example:
    """Turn one row into an `Example`. ``labels`` is the label set of a classification task (required there:
    the default instruction names every label); other formats ignore it."""
    columns = config.columns
    if fmt in ("messages", "sharegpt"):
        return _with_system(_messages_example(row, columns, fmt), _system_prompt(row, config))
    if fmt == "classification":
        if labels is None:
            raise ValueError("to_example needs the label set of a classification task (see convert_rows)")
        label = label_of(row, config)
        if label not in labels:
            raise DataError(row.file, row.line, f"label {label!r} is not one of the labels: {', '.join(labels)}")
        instruction = _instruction(config, DEFAULT_CLASSIFICATION_INSTRUCTION)
        # str.replace, not str.format: a user instruction may contain other braces (JSON examples, code).
        user = _with_instruction(instruction.replace("{labels}", ", ".join(labels)), _text_of(row, columns, fmt))
        return _conversation(row, config, user, label, label=label)
    if fmt == "regression":
        target = target_of(row, config)
        user = _with_instruction(_instruction(config, DEFAULT_REGRESSION_INSTRUCTION), _text_of(row, columns, fmt))
        return _conversation(row, config, user, format_number(target), target=target)
    if fmt == "alpaca":
        user = _string(row, "instruction", columns, fmt)
        extra = _optional_string(row, "input", columns)
        if extra.strip():
            user = f"{user}\n\n{extra}"
        return _conversation(row, config, user, _string(row, "output", columns, fmt, allow_empty=True))
    if fmt == "prompt_completion":
        prompt = _string(row, "prompt", columns, fmt)
        return _conversation(row, config, prompt, _string(row, "completion", columns, fmt, allow_empty=True))
    if fmt == "text":
        # An empty user turn rather than no user turn: chat templates cannot render an empty prompt, and the
        # loss still covers all of the text, which is the whole assistant turn.
        return _conversation(row, config, "", _text_of(row, columns, fmt))
    raise DataError(row.file, row.line, f"unknown format {fmt!r}; known formats: {', '.join(FORMATS)}")


def _text_of(row: Row, columns: dict[str, str], fmt: str) -> str:
    where = _text_key(row, columns)
    if isinstance(where, tuple):
        first, second = (_string(row, key, {}, fmt) for key in where)
        return f"Sentence 1: {first}\nSentence 2: {second}"
    return _string(row, "text", {**columns, "text": where} if where else columns, fmt)


def _conversation(row: Row, config: DataConfig, user: str, answer: str, **fields) -> Example:
    messages = ({"role": "user", "content": user}, {"role": "assistant", "content": answer})
    example = Example(messages=messages, source=row.source, **fields)
    return _with_system(example, _system_prompt(row, config))


def _system_prompt(row: Row, config: DataConfig) -> str | None:
    """The row's own `system` field wins over ``data.system_prompt``."""
    return _optional_string(row, "system", config.columns) or config.system_prompt


def _with_system(example: Example, system: str | None) -> Example:
    if not system or example.messages[0]["role"] == "system":
        return example
    messages = ({"role": "system", "content": system}, *example.messages)
    return Example(messages=messages, source=example.source, label=example.label, target=example.target)


def _messages_example(row: Row, columns: dict[str, str], fmt: str = "messages") -> Example:
    field = "conversations" if fmt == "sharegpt" else "messages"
    key = _key(field, columns)
    turns = _value(row, field, columns, fmt)
    if not isinstance(turns, list) or not turns:
        shape = "{from, value}" if fmt == "sharegpt" else "{role, content}"
        raise DataError(
            row.file, row.line, f"key {key!r} must be a non-empty list of {shape} objects, got {_preview(turns)}",
        )
    messages = tuple(_message(row, key, index, turn, fmt) for index, turn in enumerate(turns))
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
    return Example(messages=messages, source=row.source)


def _message(row: Row, key: str, index: int, turn: Any, fmt: str = "messages") -> Message:
    """One turn as ``{role, content}`` (plus ``"weight": 0`` for an assistant turn that is context only)."""
    where = f"{key}[{index}]"
    if not isinstance(turn, dict):
        raise DataError(
            row.file, row.line, f"{where} must be an object with role and content, got {_preview(turn)}"
        )
    if fmt == "sharegpt" and "role" not in turn:  # ShareGPT's {from, value}
        speaker, content = turn.get("from"), turn.get("value")
        role = SHAREGPT_ROLES.get(speaker) if isinstance(speaker, str) else None
        if role is None:
            raise DataError(
                row.file, row.line,
                f"{where} has from {_preview(speaker)}; allowed: {', '.join(SHAREGPT_ROLES)}",
            )
        text_key = "value"
    else:
        role, content, text_key = turn.get("role"), turn.get("content"), "content"
        if role not in ROLES:
            keys = ", ".join(map(str, turn)) or "(none)"
            raise DataError(
                row.file, row.line,
                f"{where} has role {_preview(role)}; allowed roles: {', '.join(ROLES)} (its keys: {keys})",
            )
    if not isinstance(content, str):
        raise DataError(row.file, row.line, f"{where}.{text_key} must be a string, got {type(content).__name__}")
    message: Message = {"role": role, "content": content}
    if "weight" in turn:
        weight = turn["weight"]
        if role != "assistant":
            raise DataError(row.file, row.line, f"{where} is a {role} turn with a weight; only assistant turns "
                            "carry one", "remove the weight: only assistant turns are learned")
        if isinstance(weight, bool) or weight not in (0, 1):
            raise DataError(row.file, row.line, f"{where}.weight must be 0 or 1, got {_preview(weight)}",
                            "0 keeps the turn as context without loss, 1 (the default) learns it")
        if weight == 0:
            message["weight"] = 0
    return message


# ---- many rows → examples -------------------------------------------------------------------------------------


def convert_rows(
    rows_by_split: dict[str, list[Row]], config: DataConfig, on_error: Callable[[DataError], None] | None = None,
    labels: list[str] | None = None,
) -> tuple[dict[str, list[Example]], str, list[str] | None]:
    """Convert every split with one format and one label set: ``(examples by split, format, labels)``.

    The format is ``data.format``, or detected from the first row of the first split. The label set is
    ``labels`` when given (mixed sources share one), else ``data.label_names``, else the sorted labels found
    in all the rows given.

    Without ``on_error`` the first bad row raises its `DataError`. With it, a bad row is passed to it and left
    out (reported once, even when both its label and its conversion are bad); the format is then detected from
    the first row it can be detected from, and only when none can is that an error.
    """
    all_rows = [row for rows in rows_by_split.values() for row in rows]
    if not all_rows:
        raise DataError("<data>", None, "no rows to read")
    fmt = _detect_format(all_rows, config.columns, on_error) if config.format == "auto" else config.format
    bad: set[int] = set()

    def lenient(convert: Callable[[Row], Any], row: Row) -> Any:
        try:
            return convert(row)
        except DataError as error:
            if on_error is None:
                raise
            bad.add(id(row))
            on_error(error)
            return None

    if fmt != "classification":
        labels = None
    elif labels is None:
        found = {lenient(lambda row: label_of(row, config), row) for row in all_rows}
        found.discard(None)
        labels = list(config.label_names) if config.label_names else sort_labels(found)
    examples = {}
    for split, rows in rows_by_split.items():
        converted = (lenient(lambda row: to_example(row, fmt, config, labels), row)
                     for row in rows if id(row) not in bad)
        examples[split] = [example for example in converted if example is not None]
    return examples, fmt, labels


def _detect_format(rows: list[Row], columns: dict[str, str], on_error) -> str:
    """The format of the first row; leniently, of the first row whose format can be told."""
    try:
        return detect_format(rows[0], columns)
    except DataError as first_error:
        if on_error is None:
            raise
        for row in rows[1:]:
            try:
                return detect_format(row, columns)
            except DataError:
                continue
        raise first_error from None


def _instruction(config: DataConfig, default: str) -> str:
    """`data.instruction`, the default when unset; an empty string means "the text alone" (the system
    prompt can carry the task, which keeps every row shorter)."""
    return default if config.instruction is None else config.instruction


def _with_instruction(instruction: str, text: str) -> str:
    return f"{instruction}\n\n{text}" if instruction else text
