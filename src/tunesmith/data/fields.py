"""What a row holds: its fields (named through ``data.columns``), and the format, label and target they make.

Every route that reads rows — one file, the splits of a run, each of ``data.sources``, a streamed training file,
strict or lenient — learns the format and the label set from `infer_format_and_labels`, so they cannot disagree.
Every problem is a `DataError` naming the row's FILE:LINE and, where it helps, the keys the row has.
"""

from __future__ import annotations

import itertools
import json
import math
import re
from collections.abc import Iterable
from typing import Any, get_args

from tunesmith.config.schema import DataConfig
from tunesmith.config.vocabulary import RowFormat
from tunesmith.data.rows import Row
from tunesmith.errors import DataError
from tunesmith.text import preview

TARGET_KEYS = ("target", "score", "value")
"""Keys read as a regression target when ``data.columns`` does not map ``target``."""

_DECIMAL = re.compile(r"\s*[-+]?(\d+\.\d*|\.\d+)([eE][-+]?\d+)?\s*")
_MISSING = object()


# ---- reading fields ---------------------------------------------------------------------------------------------


def key_of(field: str, columns: dict[str, str]) -> str:
    """The user's key for one of tunesmith's field names."""
    return columns.get(field, field)


def has_field(row: Row, field: str, columns: dict[str, str]) -> bool:
    return key_of(field, columns) in row.data


def required_value(row: Row, field: str, columns: dict[str, str], fmt: str) -> Any:
    """The value of a required field; a missing key or a null names the key and the keys the row has."""
    key = key_of(field, columns)
    value = row.data.get(key, _MISSING)
    if value is _MISSING:
        mapped = f" (data.columns maps `{field}` to it)" if key != field else ""
        if not mapped:
            hint = "map your key with data.columns, e.g. {" + field + ": your_key}"
        elif field in row.data:  # tunesmith's own name, as `feedback export` and `label export` write it
            hint = (f"the row has tunesmith's own key {field!r}: drop the mapping for this file (as one of "
                    f"data.sources: columns: {{{field}: {field}}})")
        else:
            hint = None
        raise DataError(
            row.file, row.line, f"missing key {key!r}{mapped} for format {fmt}; the row has keys: {keys_of(row)}", hint,
        )
    if value is None:
        raise DataError(row.file, row.line, f"key {key!r} is null (format {fmt})")
    return value


def required_string(row: Row, field: str, columns: dict[str, str], fmt: str, allow_empty: bool = False) -> str:
    value = required_value(row, field, columns, fmt)
    key = key_of(field, columns)
    if not isinstance(value, str):
        raise DataError(
            row.file, row.line, f"key {key!r} must be a string, got {type(value).__name__} {preview(value)}"
        )
    if not allow_empty and not value.strip():
        raise DataError(row.file, row.line, f"key {key!r} is empty (format {fmt})")
    return value


def optional_string(row: Row, field: str, columns: dict[str, str]) -> str:
    """An optional text field: absent or null reads as ""."""
    value = row.data.get(key_of(field, columns))
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(
            row.file, row.line, f"key {key_of(field, columns)!r} must be a string, got {type(value).__name__}"
        )
    return value


def keys_of(row: Row) -> str:
    return ", ".join(map(str, row.data)) or "(none)"


def text_key(row: Row, columns: dict[str, str]) -> str | tuple[str, str] | None:
    """Where the row's text is: the `text` field, SST-2's `sentence`, or STS-B's sentence pair."""
    if "text" in columns or "text" in row.data:
        return key_of("text", columns)
    if "sentence" in row.data:
        return "sentence"
    if "sentence1" in row.data and "sentence2" in row.data:
        return ("sentence1", "sentence2")
    return None


def target_key(row: Row, columns: dict[str, str]) -> str | None:
    """The key of a regression target: the mapped `target` (present or not: the mapping says what the user
    means), else the first of `target`/`score`/`value` the row has."""
    if "target" in columns:
        return columns["target"]
    return next((key for key in TARGET_KEYS if key in row.data), None)


def pair_prompt_key(row: Row, columns: dict[str, str]) -> str:
    """A preference row's prompt as text equal for every row of the same prompt: its prompt (a string as the one
    user turn it is; without a prompt, the turns before the chosen answer) and its system field, as written.
    `tunesmith.data.splits.carve` keeps the rows of one key in one split."""
    prompt = row.data.get(key_of("prompt", columns))
    chosen = row.data.get(key_of("chosen", columns))
    if prompt is None and isinstance(chosen, list):
        prompt = chosen[:-1]
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": prompt}]
    return json.dumps([prompt, row.data.get(key_of("system", columns))], sort_keys=True, ensure_ascii=False,
                      default=str)


def _is_fractional(value: Any) -> bool:
    """True for a value written with a decimal point: a float (even 5.0: STS-B's first score) or "3.8" (CSV)."""
    if isinstance(value, float):
        return True
    return isinstance(value, str) and _DECIMAL.fullmatch(value) is not None


# ---- format, label, target --------------------------------------------------------------------------------------


def detect_format(row: Row, columns: dict[str, str]) -> str:
    """The format a row's keys say (after the ``data.columns`` mapping). A chosen and a rejected answer make a
    preference row whatever else the row holds (TRL's rows may carry ``messages``-like prompts)."""
    if has_field(row, "chosen", columns) and has_field(row, "rejected", columns):
        return "preference"
    if has_field(row, "messages", columns):
        return "messages"
    if has_field(row, "conversations", columns):
        return "sharegpt"
    if has_field(row, "instruction", columns) and has_field(row, "output", columns):
        return "alpaca"
    if has_field(row, "prompt", columns) and has_field(row, "completion", columns):
        return "prompt_completion"
    if text_key(row, columns) is not None:
        if target_key(row, columns) is not None:
            return "regression"
        if "label" in columns or "label" in row.data:
            return "regression" if _is_fractional(row.data.get(key_of("label", columns))) else "classification"
        return "text"
    raise DataError(
        row.file, row.line, f"cannot detect the data format from the keys: {keys_of(row)}",
        f"set data.format to one of {', '.join(get_args(RowFormat))}, or map your keys with data.columns",
    )


def label_of(row: Row, config: DataConfig) -> str:
    """The label name of a classification row: its string label, or its int label mapped by ``label_names``."""
    key = key_of("label", config.columns)
    value = required_value(row, "label", config.columns, "classification")
    names = config.label_names
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DataError(
            row.file, row.line,
            f"label {key!r} must be a string or an integer, got {type(value).__name__} {preview(value)}",
        )
    if isinstance(value, str):
        if not value.strip():
            raise DataError(row.file, row.line, f"label {key!r} is empty")
        if names is None or value in names:
            return value
        if not value.strip().lstrip("-").isdigit():
            raise DataError(
                row.file, row.line, f"label {preview(value)} is not one of data.label_names: {', '.join(names)}"
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
    key = target_key(row, config.columns) or key_of("label", config.columns)
    value = row.data.get(key)
    if value is None:
        what = "is null" if key in row.data else "is missing"
        raise DataError(
            row.file, row.line,
            f"regression target {what}: looked for {key!r}; the row has keys: {keys_of(row)}",
            "map your key with data.columns, e.g. {target: your_key}",
        )
    if isinstance(value, bool):
        raise DataError(row.file, row.line, f"target {key!r} must be a number, got a boolean")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise DataError(row.file, row.line, f"target {key!r} must be a number, got {preview(value)}") from None
    if not math.isfinite(number):
        raise DataError(row.file, row.line, f"target {key!r} must be a finite number, got {preview(value)}")
    return number


def target_text(number: float) -> str:
    """The compact text the model learns for a regression target: 3.8 → "3.8", 4.0 → "4"."""
    if number.is_integer():
        return str(int(number))
    return f"{number:.6g}"


def sort_labels(labels: Iterable[str]) -> list[str]:
    """Labels in a stable order: numerically when all are integers (so "10" comes after "2"), else by name."""
    labels = set(labels)
    if all(label.lstrip("-").isdigit() for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def infer_format_and_labels(rows: Iterable[Row], config: DataConfig, lenient: bool = False,
                            ) -> tuple[str, list[str] | None]:
    """The row format of ``rows`` and, for classification, their label set.

    The format is ``data.format``, or detected from the first row (with ``lenient``, as `data check` reads: from
    the first row whose format can be told). The label set is ``data.label_names``, else the sorted labels of
    every row; ``rows`` is read once, so it may be a stream. Strictly the first row whose label cannot be read
    raises; leniently such a row is passed over here, and converting it reports it (once).
    """
    rows = iter(rows)
    consumed: list[Row] = []
    fmt = config.format
    if fmt == "auto":
        first_error: DataError | None = None
        for row in rows:
            consumed.append(row)
            try:
                fmt = detect_format(row, config.columns)
                break
            except DataError as error:
                if not lenient:
                    raise
                first_error = first_error or error
        else:
            raise first_error or DataError("<data>", None, "no rows to read")
    if fmt != "classification":
        return fmt, None
    if config.label_names:
        return fmt, list(config.label_names)
    found = set()
    for row in itertools.chain(consumed, rows):
        try:
            found.add(label_of(row, config))
        except DataError:
            if not lenient:
                raise
    return fmt, sort_labels(found)
