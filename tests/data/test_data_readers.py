"""read_rows: every supported file type, the line each row starts on, and one-line errors for bad files."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tunesmith.data.readers import Row, read_rows
from tunesmith.errors import DataError


def read_error(path) -> str:
    with pytest.raises(DataError) as caught:
        read_rows(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_jsonl_rows_keep_their_physical_line_and_skip_blank_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n\n  \n{"a": "x\\ny", "b": null}\n', encoding="utf-8")
    assert read_rows(path) == [
        Row(str(path), 1, {"a": 1}),
        Row(str(path), 4, {"a": "x\ny", "b": None}),
    ]


def test_jsonl_keeps_unicode_line_separators_inside_strings(tmp_path):
    path = tmp_path / "d.ndjson"
    path.write_text('{"a": "one\u2028two"}\n{"a": "three"}\n', encoding="utf-8")
    assert [(row.line, row.data["a"]) for row in read_rows(path)] == [(1, "one\u2028two"), (2, "three")]


def test_utf8_bom_is_ignored(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n')
    assert read_rows(path)[0].data == {"a": 1}


def test_malformed_json_line_names_line_3_and_the_parser_message(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n{"a": 2}\n{"a": 3,}\n{"a": 4}\n', encoding="utf-8")
    assert read_error(path) == (
        f"{path}:3: malformed JSON: Expecting property name enclosed in double quotes (column 9)"
    )


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")
    assert read_error(path) == f'{path}:2: expected a JSON object ({{"key": value, ...}}), got an array'


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "d.jsonl"
    path.write_text(content, encoding="utf-8")
    assert read_error(path) == f"{path}:1: file is empty (no rows)"


def test_non_utf8_file_names_line_and_byte_offset(tmp_path):
    path = tmp_path / "d.jsonl"
    # line 1 is 12 bytes with its newline; 0xe9 (Latin-1 "é") is the 11th byte of line 2: offset 12 + 10 = 22
    path.write_bytes(b'{"a": "ok"}\n{"a": "caf\xe9"}\n')
    assert read_error(path) == (
        f"{path}:2: not valid UTF-8: byte 0xe9 at byte offset 22 (column 11 of the line) (save the file as UTF-8)"
    )


def test_missing_file_and_unknown_extension(tmp_path):
    assert read_error(tmp_path / "nope.jsonl") == f"{tmp_path / 'nope.jsonl'}: file not found"
    path = tmp_path / "d.txt"
    path.write_text("hello", encoding="utf-8")
    assert read_error(path).startswith(f"{path}: unknown file type '.txt' (use one of .jsonl, .ndjson, .json")


def test_csv_rows_start_on_their_physical_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,label\nhello,0\n"two\nlines, quoted",1\n\nlast,1\n', encoding="utf-8")
    assert read_rows(path) == [
        Row(str(path), 2, {"text": "hello", "label": "0"}),
        Row(str(path), 3, {"text": "two\nlines, quoted", "label": "1"}),
        Row(str(path), 6, {"text": "last", "label": "1"}),
    ]


def test_csv_broken_quote_names_the_row_where_the_quote_opens(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,label\nhello,0\n"oops,1\nfine,0\n', encoding="utf-8")
    assert read_error(path).startswith(f"{path}:3: broken CSV quoting in the row starting here: ")


def test_csv_wrong_number_of_fields(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\nhello,0\nhello, world,1\n", encoding="utf-8")
    assert read_error(path) == (
        f"{path}:3: row has 3 fields but the header has 2 (quote fields that contain commas)"
    )


def test_csv_duplicate_header_name(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,text\na,b\n", encoding="utf-8")
    assert read_error(path) == f"{path}:1: the CSV header names column 'text' twice"


def test_json_array_rows_know_the_line_their_object_starts_on(tmp_path):
    path = tmp_path / "d.json"
    rows = [{"a": 1}, {"a": 2, "b": [1, 2]}, {"a": "x"}]
    path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    # indent=2 puts "[" on line 1, then each object over 3, 7 and 3 lines
    assert [(row.line, row.data) for row in read_rows(path)] == [(2, rows[0]), (5, rows[1]), (12, rows[2])]


def test_json_array_with_a_non_object(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n  {"a": 1},\n  "just text",\n  {"a": 2}\n]\n', encoding="utf-8")
    assert read_error(path) == f'{path}:3: expected a JSON object ({{"key": value, ...}}), got a string'


def test_json_array_malformed_names_the_parser_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n  {"a": 1},\n  {"a": 2}\n  {"a": 3}\n]\n', encoding="utf-8")
    assert read_error(path) == f"{path}:4: malformed JSON: expected ',' or ']' after an array element"
    path.write_text('[\n  {"a": 1},\n  {"a": }\n]\n', encoding="utf-8")
    assert read_error(path) == f"{path}:3: malformed JSON: Expecting value (column 9)"
    path.write_text('[{"a": 1}]\n]\n', encoding="utf-8")
    assert read_error(path) == f"{path}:2: malformed JSON: extra data after the closing ']'"


def test_json_file_with_one_object_per_line_reads_as_json_lines(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('{"a": 1}\n{"a": 2}\n', encoding="utf-8")
    assert [(row.line, row.data["a"]) for row in read_rows(path)] == [(1, 1), (2, 2)]


def test_parquet_rows_are_numbered_from_one(tmp_path):
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["a", "b", "c"], "label": [0, 1, 0]}), path)
    assert read_rows(path) == [
        Row(str(path), 1, {"text": "a", "label": 0}),
        Row(str(path), 2, {"text": "b", "label": 1}),
        Row(str(path), 3, {"text": "c", "label": 0}),
    ]


def test_unreadable_parquet(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"not parquet at all")
    assert read_error(path).startswith(f"{path}: not a readable Parquet file: ")
