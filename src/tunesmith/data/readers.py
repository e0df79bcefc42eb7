"""Read data into rows, each remembering the file and line it came from.

Supported: JSON Lines (`.jsonl`, `.ndjson`), JSON (`.json`: an array of objects, or one object per line), CSV
(`.csv`, with a header) and Parquet (`.parquet`); JSON Lines, JSON and CSV also gzip- (`.gz`) or
zstd-compressed (`.zst`). A path may also be a glob (`data/*.jsonl`, `data/**/*.jsonl`: the files in sorted
order, each real file once, each row keeps its own file and line; see `tunesmith.data.globs`) or a folder written
by `datasets.save_to_disk` (a `DatasetDict` folder reads its `train` split; name another split as
`folder/validation`; a row's line is its index + 1; see `tunesmith.data.columnar`).

`iter_rows` yields rows lazily: JSON Lines line by line (also compressed), Parquet and saved datasets batch by
batch, so streaming a file bigger than memory holds one row (or batch) at a time; JSON arrays and CSV are
read whole. `read_rows` returns them all. A JSON Lines line longer than `MAX_ROW_BYTES` is a bad row, found
before the line is held whole, parsed or tokenized (a 2 GB line would otherwise take many times its size).

One module for every file type on purpose: they share the FILE:LINE conventions and the lenient reporter.
Every problem becomes a `DataError` that names the file and line, so the user can open the file at the right
place; no parser traceback reaches them. By default the first bad row raises. With ``on_error`` (a callable
taking the `DataError`), a bad row is passed to it and skipped, so `data check` can list many bad rows; a
problem with the whole file (missing, unknown type, not UTF-8 text, not JSON at all, undecompressable) still
raises.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import zstandard

from tunesmith.config.schema import DataConfig
from tunesmith.data.columnar import iter_parquet, iter_saved_dataset
from tunesmith.data.globs import expand_data_path, files_under
from tunesmith.data.rows import OnError, Row
from tunesmith.errors import DataError, NoUsableRowsError
from tunesmith.text import count_of

JSONL_SUFFIXES = (".jsonl", ".ndjson")
SUFFIXES = (*JSONL_SUFFIXES, ".json", ".csv", ".parquet")
COMPRESSED_SUFFIXES = (".gz", ".zst")
"""Compression around a JSON Lines, JSON or CSV file (`train.jsonl.gz`, `train.jsonl.zst`)."""

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_32_BOMS = (b"\xff\xfe", b"\xfe\xff")  # also the start of the UTF-32 BOMs
_JSON_WHITESPACE = " \t\r\n"
_SNIFF_BYTES = 4_096
_SKIP_CHUNK = 1 << 20

MAX_ROW_BYTES = 8 * 1024 * 1024
"""The longest JSON Lines line (in bytes, without its newline) read as a row, checked before the line is held
whole: far above what a model's context holds as one example, far below what parsing and tokenizing a line can
hold in memory. A longer line is a bad row naming FILE:LINE and its size."""


def read_rows(path: str | Path, on_error: OnError | None = None) -> list[Row]:
    """All rows of a data file (or glob, or saved dataset folder), in file order.

    Raises `DataError` for a missing, empty or malformed file. With ``on_error``, bad rows go to it and are
    skipped; file-level problems still raise, and so does a path none of whose rows can be read (after every
    bad row went to ``on_error``): the first bad row's error, saying so.
    """
    return list(iter_rows(path, on_error))


def iter_rows(path: str | Path, on_error: OnError | None = None) -> Iterator[Row]:
    """The rows of `read_rows`, one at a time, without holding the whole file in memory where the format
    allows it (see the module docstring)."""
    text = str(path)
    files = expand_data_path(text)
    if not files:
        raise DataError(text, None, "no file matches this pattern", "check the folder and the pattern")
    bad: list[DataError] = []
    report = None if on_error is None else lambda error: (bad.append(error), on_error(error))
    found = False
    for file in files:
        for row in _iter_path(Path(file), report):
            found = True
            yield row
    if not found and bad:  # only lenient reading gets here: strict reading raised at the first bad row
        first = bad[0]
        raise NoUsableRowsError(first.file, first.line, first.problem,
                                f"no row of {text} is readable: {count_of(len(bad), 'bad row')}")


def data_files(paths: Iterable[str | None]) -> list[Path]:
    """Every file that reading ``paths`` touches, in a fixed order: globs expanded, a saved-dataset folder as
    its files (Arrow shards and the JSON files that describe them). Missing paths are listed as given."""
    files: list[Path] = []
    for pattern in filter(None, paths):
        for match in expand_data_path(pattern):
            files += files_under(match) if match.is_dir() else [match]
    return files


def data_file_paths(config: DataConfig) -> list[Path]:
    """Every file the data settings read (`data_files` of every path they name), in a fixed order."""
    return data_files([config.train, config.validation, config.test, config.path,
                       *(source.path for source in config.sources or [])])


def data_suffix(path: str | Path) -> tuple[str, str]:
    """``(file type, compression)`` of a path: ``("jsonl", ".gz")`` for `a.jsonl.gz`, ``(".csv", "")`` for
    `a.csv`. The file type is ``""`` when not supported."""
    suffixes = [suffix.lower() for suffix in Path(path).suffixes]
    compression = suffixes.pop() if suffixes and suffixes[-1] in COMPRESSED_SUFFIXES else ""
    kind = suffixes[-1] if suffixes else ""
    if kind not in SUFFIXES or (compression and kind == ".parquet"):
        return "", compression
    return kind, compression


def _iter_path(path: Path, on_error: OnError | None) -> Iterator[Row]:
    """One file or saved-dataset folder; an empty one (no rows and no bad rows) is an error."""
    report = _Reporter(on_error)
    if path.is_dir():
        rows = iter_saved_dataset(path)
    else:
        rows = _iter_file(path, report)
    found = False
    for row in rows:
        found = True
        yield row
    if not found and not report.count:
        raise DataError(str(path), 1, "file is empty (no rows)")


class _Reporter:
    """Raises a row's `DataError` (strict reading) or hands it to ``on_error`` and counts it (lenient)."""

    def __init__(self, on_error: OnError | None):
        self.on_error = on_error
        self.count = 0

    def __call__(self, error: DataError) -> None:
        if self.on_error is None:
            raise error
        self.count += 1
        self.on_error(error)


def _iter_file(path: Path, report: _Reporter) -> Iterator[Row]:
    file = str(path)
    kind, compression = data_suffix(path)
    if not kind:
        shown = "".join(path.suffixes[-2:]) if compression else path.suffix
        raise DataError(
            file, None, f"unknown file type {shown or '(no extension)'!r}",
            f"use one of {', '.join(SUFFIXES)} (JSON Lines, JSON and CSV may end in .gz or .zst), a glob of "
            "such files, or a folder written by datasets.save_to_disk",
        )
    if not path.is_file():
        raise DataError(file, None, "file not found")
    if kind == ".parquet":
        yield from iter_parquet(path)
    elif kind in JSONL_SUFFIXES:
        with _open_binary(path, compression) as stream:
            yield from _jsonl_rows(file, _guarded(file, _bounded_lines(stream), compression), report)
    else:
        with _open_binary(path, compression) as stream:
            raw = b"".join(_guarded(file, [stream], compression, whole=True))
        if kind == ".json":
            yield from _json_rows(file, raw, report)
        else:
            yield from _csv_rows(file, decode_utf8(file, raw), report)


# ---- bytes in: plain, gzip, zstd ------------------------------------------------------------------------------


def _open_binary(path: Path, compression: str) -> IO[bytes]:
    if compression == ".gz":
        return gzip.open(path, "rb")
    if compression == ".zst":
        # A buffered reader around the decompressing stream: iterating it splits lines as a plain file does.
        raw = path.open("rb")
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw, closefd=True))
    return path.open("rb")


def _guarded(file: str, stream: Iterable, compression: str, whole: bool = False) -> Iterator[bytes]:
    """Lines of ``stream`` (or its whole content with ``whole``); a corrupt compressed file becomes one
    file-level `DataError` instead of a zlib/zstd traceback in the middle of reading."""
    try:
        if whole:
            for handle in stream:
                yield handle.read()
        else:
            yield from stream
    except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
        what = {".gz": "gzip", ".zst": "zstd"}.get(compression, "")
        raise DataError(file, None, f"cannot read the {what} file: {exc}".replace("the  file", "the file"),
                        "check that the file is complete" if what else None) from None


class _LongLine(int):
    """A line over `MAX_ROW_BYTES`, in place of its bytes: its length (without the newline)."""


def _bounded_lines(stream: IO[bytes]) -> Iterator[bytes | _LongLine]:
    """The lines of ``stream``, none held longer than `MAX_ROW_BYTES` (the module constant, read at each call): a
    longer line is read past in chunks, to measure it, and stands as a `_LongLine`."""
    limit = MAX_ROW_BYTES
    while line := stream.readline(limit + 1):
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        size = len(line)
        while (chunk := stream.readline(_SKIP_CHUNK)) and not chunk.endswith(b"\n"):
            size += len(chunk)
        size += len(chunk) - 1 if chunk else 0
        yield _LongLine(size)


def decode_utf8(file: str, raw: bytes) -> str:
    """The text of a whole file's bytes (a UTF-8 BOM dropped); a `DataError` naming the first byte that is not
    UTF-8 (its offset, line and column), or the whole file when it looks like UTF-16/32 or binary."""
    _reject_non_utf8_text(file, raw)
    start = len(_UTF8_BOM) if raw.startswith(_UTF8_BOM) else 0  # Excel writes a BOM in front of UTF-8 CSVs
    try:
        return raw[start:].decode("utf-8")
    except UnicodeDecodeError as exc:
        offset = start + exc.start
        line = raw.count(b"\n", 0, offset) + 1
        column = offset - (raw.rfind(b"\n", 0, offset) + 1) + 1
        raise _utf8_error(file, line, raw[offset], offset, column) from None


def _utf8_error(file: str, line: int, byte: int, offset: int, column: int) -> DataError:
    return DataError(
        file, line, f"not valid UTF-8: byte 0x{byte:02x} at byte offset {offset} (column {column} of the line)",
        "save the file as UTF-8",
    )


def _reject_non_utf8_text(file: str, head: bytes) -> None:
    """A UTF-16/32 file (Windows "Unicode" exports) or a binary file is wrong as a whole, not line by line:
    one file-level error instead of an error for every line."""
    head = head[:_SNIFF_BYTES]
    if head.startswith(_UTF16_32_BOMS) or b"\x00" in head:
        raise DataError(
            file, None, "not UTF-8 text (it looks like UTF-16/UTF-32 or a binary file)", "save the file as UTF-8"
        )


# ---- JSON Lines and JSON --------------------------------------------------------------------------------------


def _jsonl_rows(
    file: str, lines: Iterable[bytes | _LongLine], report: _Reporter, hint: str | None = None
) -> Iterator[Row]:
    """Decode and parse line by line, so a bad line (bad UTF-8 or bad JSON) is reported alone.

    Lines are split on b"\\n" only: str.splitlines would also split on U+2028 and friends, which are legal
    inside JSON strings. ``hint`` replaces the hint of JSON errors (a `.json` file read as JSON Lines).
    """
    offset = 0
    seen_content = False
    for number, raw in enumerate(lines, start=1):
        if isinstance(raw, _LongLine):
            offset += raw + 1
            seen_content = True
            report(DataError(file, number, f"the line is {raw} bytes long; a row may take at most {MAX_ROW_BYTES} "
                             "bytes", "shorten or split this row"))
            continue
        line_offset, offset = offset, offset + len(raw)
        if number == 1:
            _reject_non_utf8_text(file, raw)
        start = len(_UTF8_BOM) if number == 1 and raw.startswith(_UTF8_BOM) else 0
        end = len(raw) - 1 if raw.endswith(b"\n") else len(raw)  # JSON error columns as the user sees the line
        try:
            text = raw[start:end].decode("utf-8")
        except UnicodeDecodeError as exc:
            position = start + exc.start
            report(_utf8_error(file, number, raw[position], line_offset + position, position + 1))
            continue
        if not text.strip():
            continue
        first_content, seen_content = not seen_content, True
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            error = DataError(file, number, f"malformed JSON: {exc.msg} (column {exc.colno})", hint)
            if first_content and not text.lstrip().startswith(("{", "[")):
                raise error from None  # not JSON Lines at all (CSV or prose under a .jsonl name): file-level
            report(error)
            continue
        if not isinstance(value, dict):
            report(_not_an_object(file, number, value, hint))
            continue
        yield Row(file, number, value)


def _json_rows(file: str, raw: bytes, report: _Reporter) -> Iterator[Row]:
    start = len(_UTF8_BOM) if raw.startswith(_UTF8_BOM) else 0
    first = raw[start:].lstrip(_JSON_WHITESPACE.encode())[:1]
    if first != b"[":
        # `datasets.Dataset.to_json` and many exporters write JSON Lines under a `.json` name.
        hint = "a .json file must hold one array of objects, or one object per line"
        yield from _jsonl_rows(file, _bounded_lines(io.BytesIO(raw)), report, hint)
        return
    text = decode_utf8(file, raw)
    yield from _json_array_rows(file, text, _skip_whitespace(text, 0), report)


def _json_array_rows(file: str, text: str, start: int, report: _Reporter) -> Iterator[Row]:
    """Decode the array one element at a time so each row knows the line its object starts on. After a syntax
    error the rest of the array cannot be located, so reading stops there (reported, or raised)."""
    decoder = json.JSONDecoder()
    line, counted_to = 1, 0
    position = _skip_whitespace(text, start + 1)
    if position < len(text) and text[position] == "]":
        _expect_end(file, text, position + 1)
        return
    while True:
        line += text.count("\n", counted_to, position)
        counted_to = position
        try:
            value, position = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            report(DataError(file, exc.lineno, f"malformed JSON: {exc.msg} (column {exc.colno})"))
            return
        if isinstance(value, dict):
            yield Row(file, line, value)
        else:
            report(_not_an_object(file, line, value))
        position = _skip_whitespace(text, position)
        if position < len(text) and text[position] == "]":
            _expect_end(file, text, position + 1, report)
            return
        if position >= len(text) or text[position] != ",":
            error_line = line + text.count("\n", counted_to, position)
            report(DataError(file, error_line, "malformed JSON: expected ',' or ']' after an array element"))
            return
        position = _skip_whitespace(text, position + 1)


def _expect_end(file: str, text: str, position: int, report: _Reporter | None = None) -> None:
    end = _skip_whitespace(text, position)
    if end != len(text):
        error = DataError(file, text.count("\n", 0, end) + 1, "malformed JSON: extra data after the closing ']'")
        if report is None:
            raise error
        report(error)


def _skip_whitespace(text: str, position: int) -> int:
    while position < len(text) and text[position] in _JSON_WHITESPACE:
        position += 1
    return position


def _not_an_object(file: str, line: int, value: Any, hint: str | None = None) -> DataError:
    return DataError(
        file, line, f"expected a JSON object ({{\"key\": value, ...}}), got {_json_type(value)}", hint
    )


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


# ---- CSV ------------------------------------------------------------------------------------------------------


def _csv_rows(file: str, text: str, report: _Reporter) -> Iterator[Row]:
    # newline="" keeps line breaks inside quoted fields, as the csv module requires; strict=True turns a broken
    # quote into an error instead of a silently mangled field.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    header: list[str] | None = None
    row_start = 1
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            if header is None:
                raise DataError(file, row_start, f"broken CSV quoting in the header: {exc}") from None
            report(DataError(file, row_start, f"broken CSV quoting in the row starting here: {exc}"))
            row_start = reader.line_num + 1
            continue
        if header is None:
            header = _csv_header(file, fields)
        elif fields:  # a blank line reads as [] and holds no row
            if len(fields) != len(header):
                report(DataError(
                    file, row_start, f"row has {len(fields)} fields but the header has {len(header)}",
                    "quote fields that contain commas",
                ))
            else:
                yield Row(file, row_start, dict(zip(header, fields)))
        row_start = reader.line_num + 1


def _csv_header(file: str, fields: list[str]) -> list[str]:
    seen: set[str] = set()
    for name in fields:
        if not name.strip():
            raise DataError(file, 1, "the CSV header has an empty column name")
        if name in seen:
            raise DataError(file, 1, f"the CSV header names column {name!r} twice")
        seen.add(name)
    return fields
