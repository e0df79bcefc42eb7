"""Lenient reading (``on_error``): bad rows are reported and skipped so `data check` can list them all; a
problem with the whole file still raises; without ``on_error`` the first bad row raises, as before."""

from __future__ import annotations

import json

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.formats import convert_rows
from tunesmith.data.readers import read_rows
from tunesmith.errors import DataError


def lenient_read(path):
    errors: list[DataError] = []
    rows = read_rows(path, on_error=errors.append)
    return rows, [f"{e.line}: {e.problem}" for e in errors]


def test_jsonl_bad_lines_are_reported_and_the_rest_read(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": \n[1, 2]\n{"a": "caf\xe9"}\n\n{"a": 5}\n')
    rows, errors = lenient_read(path)
    assert [(row.line, row.data["a"]) for row in rows] == [(1, 1), (6, 5)]
    assert errors == [
        "2: malformed JSON: Expecting value (column 7)",
        "3: expected a JSON object ({\"key\": value, ...}), got an array",
        # line 4 starts at byte 9 + 7 + 7 = 23; 0xe9 is its 11th byte: offset 33 in the file
        "4: not valid UTF-8: byte 0xe9 at byte offset 33 (column 11 of the line)",
    ]
    with pytest.raises(DataError, match=r"d\.jsonl:2: malformed JSON"):
        read_rows(path)  # strict: the first bad row raises


def test_a_file_whose_rows_are_all_bad_gives_no_rows_and_every_error(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": \n{"b": \n', encoding="utf-8")
    rows, errors = lenient_read(path)
    assert rows == [] and [e.split(":")[0] for e in errors] == ["1", "2"]


@pytest.mark.parametrize("name, content, problem", [
    ("missing.jsonl", None, "file not found"),
    ("d.txt", b"hello", "unknown file type '.txt'"),
    ("empty.jsonl", b"\n\n", "file is empty"),
    ("utf16.jsonl", '{"a": 1}\n{"a": 2}\n'.encode("utf-16"), "not UTF-8 text"),
    ("really.jsonl", b"text,label\nhello,0\n", "malformed JSON"),  # a CSV under a .jsonl name: not JSON at all
    ("header.csv", b"text,text\na,b\n", "names column 'text' twice"),
])
def test_file_level_problems_still_raise(tmp_path, name, content, problem):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    errors = []
    with pytest.raises(DataError, match=problem):
        read_rows(path, on_error=errors.append)
    assert errors == []


def test_csv_rows_with_the_wrong_field_count_are_reported(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\nhello,0\nhello, world,1\nbye,1\n", encoding="utf-8")
    rows, errors = lenient_read(path)
    assert [row.line for row in rows] == [2, 4]
    assert errors == ["3: row has 3 fields but the header has 2"]


def test_json_array_elements_that_are_not_objects_are_reported(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n  {"a": 1},\n  "just text",\n  {"a": 2}\n]\n', encoding="utf-8")
    rows, errors = lenient_read(path)
    assert [(row.line, row.data) for row in rows] == [(2, {"a": 1}), (4, {"a": 2})]
    assert errors == ["3: expected a JSON object ({\"key\": value, ...}), got a string"]


def test_convert_rows_reports_each_bad_row_once_and_converts_the_rest(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [
        {"note": "no text here"},  # the format cannot be told from this row: detected from the next one
        {"text": "good one", "label": "spam"},
        {"text": "", "label": 3.5},  # a bad label and an empty text: one report (the label, found first)
        {"text": "fine", "label": "ham"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    errors: list[DataError] = []
    examples, fmt, labels = convert_rows({"train": read_rows(path)}, DataConfig(path=str(path)), errors.append)
    assert fmt == "classification" and labels == ["ham", "spam"]
    assert [e.source for e in examples["train"]] == [f"{path}:2", f"{path}:4"]
    assert [e.line for e in errors] == [1, 3]
    assert "label 'label' must be a string or an integer" in errors[1].problem
    with pytest.raises(DataError, match=r"d\.jsonl:1: cannot detect the data format"):
        convert_rows({"train": read_rows(path)}, DataConfig(path=str(path)))


def test_convert_rows_raises_when_no_row_tells_the_format(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"x": 1}\n{"y": 2}\n', encoding="utf-8")
    with pytest.raises(DataError, match="cannot detect the data format"):
        convert_rows({"train": read_rows(path)}, DataConfig(path=str(path)), on_error=lambda error: None)
