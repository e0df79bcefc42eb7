"""Read a data file into rows, each remembering the file and line it came from.

Supported: JSON Lines (`.jsonl`, `.ndjson`), JSON (`.json`: an array of objects, or one object per line), CSV
(`.csv`, with a header) and Parquet (`.parquet`). Every problem becomes a `DataError` that names the file and
line, so the user can open the file at the right place; no parser traceback reaches them.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunesmith.errors import DataError

JSONL_SUFFIXES = (".jsonl", ".ndjson")
SUFFIXES = (*JSONL_SUFFIXES, ".json", ".csv", ".parquet")

_UTF8_BOM = b"\xef\xbb\xbf"
_JSON_WHITESPACE = " \t\r\n"


@dataclass(frozen=True)
class Row:
    """One record of a data file. ``line`` is where it starts: the physical line for JSONL, JSON and CSV (the
    header is line 1), the row index + 1 for Parquet."""

    file: str
    line: int
    data: dict[str, Any]

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}"


def read_rows(path: str | Path) -> list[Row]:
    """All rows of a data file, in file order. Raises `DataError` for a missing, empty or malformed file."""
    path = Path(path)
    file = str(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            file, None, f"unknown file type {suffix or '(no extension)'!r}",
            f"use one of {', '.join(SUFFIXES)}",
        )
    if not path.is_file():
        raise DataError(file, None, "file not found")
    if suffix == ".parquet":
        rows = _read_parquet(path)
    else:
        text = _decode_utf8(file, path.read_bytes())
        if suffix in JSONL_SUFFIXES:
            rows = _read_jsonl(file, text)
        elif suffix == ".json":
            rows = _read_json(file, text)
        else:
            rows = _read_csv(file, text)
    if not rows:
        raise DataError(file, 1, "file is empty (no rows)")
    return rows


def _decode_utf8(file: str, raw: bytes) -> str:
    start = len(_UTF8_BOM) if raw.startswith(_UTF8_BOM) else 0  # Excel writes a BOM in front of UTF-8 CSVs
    try:
        return raw[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        line = raw.count(b"\n", 0, offset) + 1
        column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
        raise DataError(
            file, line,
            f"not valid UTF-8: byte 0x{raw[offset]:02x} at byte offset {offset} (column {column} of the line)",
            "save the file as UTF-8",
        ) from None


def _read_jsonl(file: str, text: str) -> list[Row]:
    rows = []
    # Split on "\n" only: str.splitlines would also split on U+2028 and friends, which are legal inside JSON strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(file, number, f"malformed JSON: {exc.msg} (column {exc.colno})") from None
        rows.append(Row(file, number, _require_object(file, number, value)))
    return rows


def _read_json(file: str, text: str) -> list[Row]:
    start = _skip_whitespace(text, 0)
    if start == len(text):
        return []
    if text[start] != "[":
        # `datasets.Dataset.to_json` and many exporters write JSON Lines under a `.json` name.
        try:
            return _read_jsonl(file, text)
        except DataError as exc:
            raise DataError(
                file, exc.line, exc.problem, "a .json file must hold one array of objects, or one object per line"
            ) from None
    return _read_json_array(file, text, start)


def _read_json_array(file: str, text: str, start: int) -> list[Row]:
    """Decode the array one element at a time so each row knows the line its object starts on."""
    decoder = json.JSONDecoder()
    rows: list[Row] = []
    line, counted_to = 1, 0
    position = _skip_whitespace(text, start + 1)
    if position < len(text) and text[position] == "]":
        return _expect_end(file, text, position + 1, rows)
    while True:
        line += text.count("\n", counted_to, position)
        counted_to = position
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise DataError(file, exc.lineno, f"malformed JSON: {exc.msg} (column {exc.colno})") from None
        rows.append(Row(file, line, _require_object(file, line, value)))
        position = _skip_whitespace(text, position)
        if position < len(text) and text[position] == "]":
            return _expect_end(file, text, position + 1, rows)
        if position >= len(text) or text[position] != ",":
            error_line = line + text.count("\n", counted_to, position)
            raise DataError(file, error_line, "malformed JSON: expected ',' or ']' after an array element")
        position = _skip_whitespace(text, position + 1)


def _expect_end(file: str, text: str, position: int, rows: list[Row]) -> list[Row]:
    end = _skip_whitespace(text, position)
    if end != len(text):
        raise DataError(file, text.count("\n", 0, end) + 1, "malformed JSON: extra data after the closing ']'")
    return rows


def _skip_whitespace(text: str, position: int) -> int:
    while position < len(text) and text[position] in _JSON_WHITESPACE:
        position += 1
    return position


def _require_object(file: str, line: int, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise DataError(file, line, f"expected a JSON object ({{\"key\": value, ...}}), got {_json_type(value)}")
    return value


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def _read_csv(file: str, text: str) -> list[Row]:
    # newline="" keeps line breaks inside quoted fields, as the csv module requires; strict=True turns a broken
    # quote into an error instead of a silently mangled field.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    rows = []
    row_start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise DataError(file, row_start, f"broken CSV quoting in the row starting here: {exc}") from None
        if header is None:
            header = _csv_header(file, fields)
        elif fields:  # a blank line reads as [] and holds no row
            if len(fields) != len(header):
                raise DataError(
                    file, row_start, f"row has {len(fields)} fields but the header has {len(header)}",
                    "quote fields that contain commas",
                )
            rows.append(Row(file, row_start, dict(zip(header, fields))))
        row_start = reader.line_num + 1
    return rows


def _csv_header(file: str, fields: list[str]) -> list[str]:
    seen: set[str] = set()
    for name in fields:
        if not name.strip():
            raise DataError(file, 1, "the CSV header has an empty column name")
        if name in seen:
            raise DataError(file, 1, f"the CSV header names column {name!r} twice")
        seen.add(name)
    return fields


def _read_parquet(path: Path) -> list[Row]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(str(path), None, f"not a readable Parquet file: {exc}") from None
    return [Row(str(path), index + 1, record) for index, record in enumerate(table.to_pylist())]
