"""Property-based tests: corrupted data files give rows or a tunesmith error, never a traceback or a hang.

Each case starts from a valid file (alpaca, classification or messages rows as JSONL, a JSON array or CSV),
applies one corruption (truncation, wrong types, invalid UTF-8, missing keys, a 1 MB value, random bytes, an
empty file, nested junk) and reads + converts it. `max_examples` keeps the file near 20 s on 2 cores.
"""

from __future__ import annotations

import csv
import io
import json
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunesmith.config.schema import DataConfig
from tunesmith.data.formats import convert_rows
from tunesmith.data.readers import read_rows
from tunesmith.data.stream import iter_rows
from tunesmith.errors import TunesmithError

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
        assert str(error).strip()  # a one-line message the CLI can print


@settings(max_examples=40, deadline=5_000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=400), suffix=st.sampled_from([".jsonl", ".json", ".csv", ".parquet"]))
def test_random_bytes_under_any_extension(tmp_path, raw, suffix):
    path = tmp_path / f"{uuid.uuid4().hex}{suffix}"
    path.write_bytes(raw)
    try:
        read_and_convert(path, None)
    except TunesmithError:
        pass
