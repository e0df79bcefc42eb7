"""Reading users' data files into rows: every file type (plain, compressed, JSON array, CSV, Parquet, globs, saved
datasets), the line each row starts on, one-line FILE:LINE errors, lenient reading, and property-based
corruption tests (a corrupted file gives rows or a tunesmith error, never a traceback or a hang)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunesmith.config.schema import DataConfig
from tunesmith.data.formats import convert_rows
from tunesmith.data.readers import iter_rows, read_rows
from tunesmith.data.rows import Row
from tunesmith.errors import DataError, TunesmithError


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


ROWS = [{"instruction": f"Say {i}.", "output": str(i)} for i in range(5)]
JSONL = "".join(json.dumps(row) + "\n" for row in ROWS).encode()


def test_gzip_and_zstd_jsonl_read_like_the_plain_file(tmp_path):
    plain = tmp_path / "d.jsonl"
    plain.write_bytes(JSONL)
    gz = tmp_path / "d.jsonl.gz"
    gz.write_bytes(gzip.compress(JSONL))
    zst = tmp_path / "d.jsonl.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(JSONL))
    expected = [(row.line, row.data) for row in read_rows(plain)]
    assert expected == [(i + 1, row) for i, row in enumerate(ROWS)]
    for path in (gz, zst):
        rows = read_rows(path)
        assert [(row.line, row.data) for row in rows] == expected
        assert rows[0].file == str(path)


def test_gzip_json_array_and_csv(tmp_path):
    json_gz = tmp_path / "d.json.gz"
    json_gz.write_bytes(gzip.compress(json.dumps(ROWS, indent=1).encode()))
    assert [row.data for row in read_rows(json_gz)] == ROWS
    csv_gz = tmp_path / "d.csv.gz"
    csv_gz.write_bytes(gzip.compress(b"text,label\nhello,0\nbye,1\n"))
    assert [(row.line, row.data) for row in read_rows(csv_gz)] == [
        (2, {"text": "hello", "label": "0"}), (3, {"text": "bye", "label": "1"})
    ]


def test_a_corrupt_compressed_file_is_a_data_error(tmp_path):
    truncated = tmp_path / "d.jsonl.gz"
    truncated.write_bytes(gzip.compress(JSONL * 50)[:-30])
    with pytest.raises(DataError, match=r"d\.jsonl\.gz: cannot read the gzip file"):
        read_rows(truncated)
    garbage = tmp_path / "e.jsonl.zst"
    garbage.write_bytes(b"this is not zstd at all")
    with pytest.raises(DataError, match=r"e\.jsonl\.zst: cannot read the zstd file"):
        read_rows(garbage, on_error=lambda error: None)  # file-level: raises even when lenient


def test_compressed_parquet_is_an_unknown_type(tmp_path):
    path = tmp_path / "d.parquet.gz"
    path.write_bytes(b"x")
    with pytest.raises(DataError, match=r"unknown file type '\.parquet\.gz'"):
        read_rows(path)


def test_glob_reads_files_in_sorted_order_and_keeps_each_file(tmp_path):
    (tmp_path / "b.jsonl").write_text('{"n": 3}\n', encoding="utf-8")
    (tmp_path / "a.jsonl").write_text('{"n": 1}\n\n{"n": 2}\n', encoding="utf-8")
    (tmp_path / "c.jsonl.gz").write_bytes(gzip.compress(b'{"n": 4}\n'))
    rows = read_rows(tmp_path / "*.jsonl*")
    assert [(row.location, row.data["n"]) for row in rows] == [
        (f"{tmp_path}/a.jsonl:1", 1), (f"{tmp_path}/a.jsonl:3", 2), (f"{tmp_path}/b.jsonl:1", 3),
        (f"{tmp_path}/c.jsonl.gz:1", 4),
    ]


def test_a_glob_matching_nothing_names_the_pattern(tmp_path):
    pattern = str(tmp_path / "nothing-*.jsonl")
    with pytest.raises(DataError, match="no file matches this pattern") as caught:
        read_rows(pattern)
    assert caught.value.file == pattern


def test_saved_dataset_and_dataset_dict_folders(tmp_path):
    import datasets

    data = {"text": ["one", "two", "three"], "label": [0, 1, 0]}
    datasets.Dataset.from_dict(data).save_to_disk(tmp_path / "single")
    rows = read_rows(tmp_path / "single")
    assert [(row.file, row.line, row.data) for row in rows] == [
        (str(tmp_path / "single"), i + 1, {"text": text, "label": label})
        for i, (text, label) in enumerate(zip(data["text"], data["label"]))
    ]
    splits = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"text": ["t1", "t2"]}),
        "validation": datasets.Dataset.from_dict({"text": ["v1"]}),
    })
    splits.save_to_disk(tmp_path / "dict")
    assert [row.data["text"] for row in read_rows(tmp_path / "dict")] == ["t1", "t2"]  # train by default
    validation = read_rows(tmp_path / "dict" / "validation")
    assert [(row.line, row.data["text"]) for row in validation] == [(1, "v1")]

    datasets.DatasetDict({"test": datasets.Dataset.from_dict({"text": ["x"]})}).save_to_disk(tmp_path / "no_train")
    with pytest.raises(DataError, match=r"has no `train` split \(its splits: test\)"):
        read_rows(tmp_path / "no_train")


def test_a_plain_folder_is_not_a_saved_dataset(tmp_path):
    (tmp_path / "folder").mkdir()
    with pytest.raises(DataError, match="not one written by datasets.save_to_disk"):
        read_rows(tmp_path / "folder")


def test_iter_rows_is_lazy(tmp_path):
    """The first rows come out before a bad line further down is read: the file is never held whole."""
    for name, write in (("d.jsonl", lambda b: b), ("d.jsonl.zst", zstandard.ZstdCompressor().compress),
                        ("d.jsonl.gz", gzip.compress)):
        path = tmp_path / name
        path.write_bytes(write(JSONL + b"{oops\n"))
        rows = iter_rows(path)
        assert [next(rows).data for _ in ROWS] == ROWS
        with pytest.raises(DataError, match=":6: malformed JSON"):
            next(rows)


def test_parquet_is_read_in_batches_with_row_numbers(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"n": list(range(2_500))}), path, row_group_size=700)
    rows = list(iter_rows(path))
    assert [row.line for row in rows] == list(range(1, 2_501)) and rows[-1].data == {"n": 2_499}


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


def test_a_file_whose_rows_are_all_bad_reports_each_then_names_the_first(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": \n{"b": \n', encoding="utf-8")
    errors: list[DataError] = []
    with pytest.raises(DataError, match=r"d\.jsonl:1: malformed JSON.*\(no row of .*d\.jsonl is readable: 2 bad "):
        read_rows(path, on_error=errors.append)
    assert [error.line for error in errors] == [1, 2]


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


VALID_ROWS = {
    "alpaca": [{"instruction": "Name a colour.", "input": "", "output": "Blue."},
               {"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"}],
    "classification": [{"text": "WINNER! claim your prize", "label": "spam"}, {"text": "see you at 5", "label": "ham"},
                       {"text": "ok", "label": 1}],
    "messages": [{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"},
                               {"role": "assistant", "content": "hello"}]},
                 {"messages": [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
                               {"role": "user", "content": "and 3+3?"}, {"role": "assistant", "content": "6"}]}],
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@st.composite
def mutated_rows(draw):
    """Valid rows with one value replaced, one key removed, a 1 MB value or junk nested into them."""
    fmt = draw(st.sampled_from(sorted(VALID_ROWS)))
    rows = json.loads(json.dumps(VALID_ROWS[fmt] * draw(st.integers(1, 3))))
    row = rows[draw(st.integers(0, len(rows) - 1))]
    key = draw(st.sampled_from(sorted(row)))
    kind = draw(st.sampled_from(["wrong_type", "missing_key", "huge", "nested_junk", "extra_key", "none"]))
    if kind == "wrong_type":
        row[key] = draw(json_values)
    elif kind == "missing_key":
        del row[key]
    elif kind == "huge":
        row[key] = "x" * 1_000_000
    elif kind == "nested_junk" and fmt == "messages":
        turns = row["messages"]
        turns[draw(st.integers(0, len(turns) - 1))] = draw(json_values)
    elif kind in ("nested_junk", "extra_key"):
        row[draw(st.text(max_size=8))] = draw(json_values)
    return fmt, rows


def serialize(rows: list, suffix: str) -> bytes:
    if suffix == ".jsonl":
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode()
    if suffix == ".json":
        return json.dumps(rows, indent=1, ensure_ascii=False).encode()
    buffer = io.StringIO()
    keys = sorted({key for row in rows if isinstance(row, dict) for key in row})
    writer = csv.DictWriter(buffer, fieldnames=keys or ["text"], extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: json.dumps(value) if not isinstance(value, str) else value
                         for key, value in row.items()} if isinstance(row, dict) else {})
    return buffer.getvalue().encode()


@st.composite
def corrupted_bytes(draw, raw: bytes):
    kind = draw(st.sampled_from(["none", "truncate", "invalid_utf8", "random_bytes", "splice", "empty",
                                 "non_object_line"]))
    if kind == "truncate" and raw:
        return raw[: draw(st.integers(0, len(raw) - 1))]
    if kind == "invalid_utf8":
        at = draw(st.integers(0, len(raw)))
        bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\x80\x80"]))
        return raw[:at] + bad + raw[at:]
    if kind == "random_bytes":
        return draw(st.binary(max_size=200))
    if kind == "splice" and raw:
        at = draw(st.integers(0, len(raw) - 1))
        return raw[:at] + draw(st.binary(min_size=1, max_size=20)) + raw[at + 1:]
    if kind == "empty":
        return draw(st.sampled_from([b"", b"\n\n", b"   ", b"[]", b"\xef\xbb\xbf"]))
    if kind == "non_object_line":
        return raw + draw(st.sampled_from([b"[1, 2]\n", b"\"text\"\n", b"null\n", b"42\n", b"{\n"]))
    return raw


def read_and_convert(path, fmt: str | None) -> None:
    config = DataConfig(train=str(path), format=fmt or "auto")
    rows = read_rows(path)
    examples, _, _ = convert_rows({"train": rows}, config)
    assert len(examples["train"]) == len(rows)
    streamed = list(iter_rows(path))
    assert [row.data for row in streamed] == [row.data for row in rows]


def assert_names_the_file(error: TunesmithError, path) -> None:
    """The error is one line that starts with the file (``FILE:`` or ``FILE:LINE:``) and says what is wrong."""
    message = str(error)
    assert "\n" not in message
    assert message.startswith(f"{path}:") or message.startswith(f"{path} "), message
    assert isinstance(error, DataError) and error.file == str(path) and error.problem.strip()


FUZZ = settings(max_examples=60, deadline=5_000, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large,
                                                                        HealthCheck.function_scoped_fixture])


@FUZZ
@given(case=mutated_rows(), suffix=st.sampled_from([".jsonl", ".json", ".csv"]), data=st.data(),
       declared=st.booleans())
def test_corrupted_files_give_rows_or_a_tunesmith_error(tmp_path, case, suffix, data, declared):
    fmt, rows = case
    raw = data.draw(corrupted_bytes(serialize(rows, suffix)))
    path = tmp_path / f"{uuid.uuid4().hex}{suffix}"
    path.write_bytes(raw)
    try:
        read_and_convert(path, fmt if declared else None)
    except TunesmithError as error:
        assert_names_the_file(error, path)


@settings(max_examples=40, deadline=5_000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=400), suffix=st.sampled_from([".jsonl", ".json", ".csv", ".parquet"]))
def test_random_bytes_under_any_extension(tmp_path, raw, suffix):
    path = tmp_path / f"{uuid.uuid4().hex}{suffix}"
    path.write_bytes(raw)
    try:
        read_and_convert(path, None)
    except TunesmithError as error:
        assert_names_the_file(error, path)
    else:  # random bytes that read as rows: only as many as a tiny file can hold, each from this file
        assert all(row.file == str(path) and row.line >= 1 for row in read_rows(path))


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".jsonl.zst", ".json"])
def test_a_line_over_the_row_limit_is_a_bad_row_named_with_its_size(tmp_path, monkeypatch, suffix):
    from tunesmith.data import readers

    monkeypatch.setattr(readers, "MAX_ROW_BYTES", 100)
    at_limit = json.dumps({"text": "a" * 88}).encode()
    over = json.dumps({"text": "b" * 200}).encode()
    assert len(at_limit) == 100
    raw = b'{"text": "first"}\n' + over + b"\n" + at_limit + b"\n" + over  # the last line has no newline
    compress = {".jsonl.gz": gzip.compress, ".jsonl.zst": zstandard.ZstdCompressor().compress}.get(suffix)
    path = tmp_path / f"d{suffix}"
    path.write_bytes(compress(raw) if compress else raw)
    errors: list[DataError] = []
    rows = read_rows(path, on_error=errors.append)
    assert [row.location for row in rows] == [f"{path}:1", f"{path}:3"]
    assert [str(error) for error in errors] == [
        f"{path}:{line}: the line is 212 bytes long; a row may take at most 100 bytes (shorten or split this row)"
        for line in (2, 4)]
    assert read_error(path) == errors[0].problem.join([f"{path}:2: ", " (shorten or split this row)"])
