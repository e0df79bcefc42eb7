"""`data clean`: writes exactly the rows the check does not flag (as they were), never touches its input."""

from __future__ import annotations

import csv
import gzip
import json
import os

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.check.clean import clean_file, run_clean
from tunesmith.data.check.data_report import check_file
from tunesmith.errors import ConfigError, DataError

ROWS = [
    {"prompt": "What is the capital of France?", "completion": "Paris.", "id": 1},
    {"prompt": "What is the capital of France?", "completion": "Paris.", "id": 2},  # duplicate of line 1
    {"prompt": "Say nothing.", "completion": "   ", "id": 3},  # empty answer
    None,  # line 4: broken JSON
    {"prompt": "Hello there my friend", "completion": "hello  there my FRIEND", "id": 5},  # copies its input
    {"id": 6, "completion": "The waves roll in and the tide goes out again.", "prompt": "Write a poem about the sea."},
    {"prompt": "Write a poem about the sea!", "completion": "The waves roll in and the tide goes out again", "id": 7},
    {"prompt": "Translate: a man rides a bike", "completion": "Ein Mann fährt Fahrrad.", "id": 8},
]


def write_input(path) -> bytes:
    lines = ["{oops" if row is None else json.dumps(row, ensure_ascii=False) for row in ROWS]
    content = ("\n".join(lines) + "\n").encode("utf-8")
    path.write_bytes(content)
    return content


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_clean_drops_exactly_the_flagged_rows_and_keeps_the_originals(tmp_path, tiny_tokenizer):
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    content = write_input(source)
    config = DataConfig(path=str(source))

    result = clean_file(source, target, config, tiny_tokenizer)

    assert source.read_bytes() == content
    assert read_jsonl(target) == [ROWS[0], ROWS[5], ROWS[6], ROWS[7]]  # original keys, order and values
    assert list(read_jsonl(target)[1]) == ["id", "completion", "prompt"]
    assert (result.total, result.kept) == (8, 4)
    assert [(s.rsplit(":", 1)[1], kind) for s, kind, _ in result.removed] == [
        ("2", "duplicate"), ("3", "empty_output"), ("4", "unreadable"), ("5", "copied_input")]
    # The removed rows are exactly what the check flags for the kinds in data.check.drop.
    report = check_file(source, tiny_tokenizer, 512, config)
    flagged = {s for f in report.findings if f.kind in config.check.drop for s, _ in f.flagged}
    assert flagged | {f"{source}:4"} == {s for s, _, _ in result.removed}
    assert any(f.kind == "near_duplicate" for f in report.findings)  # line 7: reported, kept by default
    text = result.render()
    assert text.splitlines()[:2] == [f"kept 4 of 8 rows: wrote {target}",
                                     "removed: duplicate 1, empty_output 1, unreadable 1, copied_input 1"]
    assert f"  {source}:2: duplicate (same as {source}:1)" in text
    assert f"  {source}:4: unreadable (malformed JSON" in text


def test_drop_near_duplicates_keeps_the_first_of_the_group(tmp_path, tiny_tokenizer):
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(source)
    config = DataConfig(path=str(source), check={"drop": ["near_duplicate", "unreadable"]})
    clean_file(source, target, config, tiny_tokenizer)
    assert [row["id"] for row in read_jsonl(target)] == [1, 2, 3, 5, 6, 8]  # line 2 is an exact copy, kept


def test_unreadable_rows_stop_the_clean_unless_dropped(tmp_path, tiny_tokenizer):
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    write_input(source)
    config = DataConfig(path=str(source), check={"drop": ["duplicate"]})
    with pytest.raises(DataError, match=r"in\.jsonl:4: malformed JSON.*add `unreadable` to --drop"):
        clean_file(source, target, config, tiny_tokenizer)
    assert not target.exists()


def test_output_may_not_be_the_input_or_another_format(tmp_path, tiny_tokenizer):
    source = tmp_path / "in.jsonl"
    content = write_input(source)
    config = DataConfig(path=str(source))
    with pytest.raises(ConfigError, match="never overwrites its input"):
        clean_file(source, tmp_path / "." / "in.jsonl", config, tiny_tokenizer)
    with pytest.raises(ConfigError, match="keeps the input's format"):
        clean_file(source, tmp_path / "out.csv", config, tiny_tokenizer)
    assert source.read_bytes() == content


def test_csv_stays_csv_with_its_header(tmp_path, tiny_tokenizer):
    source, target = tmp_path / "sms.csv", tmp_path / "clean.csv"
    source.write_text("label,text\nham,hello there\nspam,win cash now\nham,hello there\nham,\n", encoding="utf-8")
    content = source.read_bytes()
    result = clean_file(source, target, DataConfig(path=str(source)), tiny_tokenizer)
    with target.open(encoding="utf-8", newline="") as handle:
        assert list(csv.reader(handle)) == [["label", "text"], ["ham", "hello there"], ["spam", "win cash now"]]
    assert source.read_bytes() == content
    # Line 5 has an empty text, which classification cannot read: unreadable, dropped by default.
    assert [(s, kind) for s, kind, _ in result.removed] == [(f"{source}:4", "duplicate"), (f"{source}:5", "unreadable")]


def test_parquet_stays_parquet_with_its_schema(tmp_path, tiny_tokenizer):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    source, target = tmp_path / "data.parquet", tmp_path / "clean.parquet"
    schema = pa.schema([("text", pa.string()), ("label", pa.int8())])
    pq.write_table(pa.Table.from_pylist([{"text": "hi", "label": 0}, {"text": "win", "label": 1},
                                         {"text": "hi", "label": 0}], schema=schema), source)
    clean_file(source, target, DataConfig(path=str(source), label_names=["ham", "spam"]), tiny_tokenizer)
    table = pq.read_table(target)
    assert table.schema == schema and table.to_pylist() == [{"text": "hi", "label": 0}, {"text": "win", "label": 1}]


def test_gzip_output_and_run_clean_with_drop(tmp_path, tiny_model_dir):
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl.gz"
    write_input(source)
    text = run_clean(str(source), str(target), None, "duplicate,unreadable", [f"model.name={tiny_model_dir}"])
    assert text.splitlines()[1] == "removed: duplicate 1, unreadable 1"
    kept = [json.loads(line) for line in gzip.decompress(target.read_bytes()).decode().splitlines()]
    assert [row["id"] for row in kept] == [1, 3, 5, 6, 7, 8]
    with pytest.raises(ConfigError, match="data.check.drop"):
        run_clean(str(source), str(target), None, "duplicates", [f"model.name={tiny_model_dir}"])


def test_real_data_clean_removes_exactly_the_repeated_rows(shared_data, tmp_path, tiny_tokenizer):
    source = shared_data / "sms_spam_train.jsonl"
    before = source.read_bytes()
    target = tmp_path / "sms_clean.jsonl"
    result = clean_file(source, target, DataConfig(path=str(source), check={"drop": ["duplicate"]}), tiny_tokenizer)
    rows = [json.loads(line) for line in before.decode("utf-8").splitlines()]
    seen, first_of_each = set(), []
    for row in rows:
        if (row["text"], row["label"]) not in seen:
            seen.add((row["text"], row["label"]))
            first_of_each.append(row)
    assert read_jsonl(target) == first_of_each
    assert result.kept == len(first_of_each) < result.total == len(rows)
    assert source.read_bytes() == before


def test_output_may_not_be_any_file_a_recursive_glob_reads_nor_inside_a_folder_it_matches(tmp_path, tiny_tokenizer):
    (tmp_path / "in" / "deep" / "deeper").mkdir(parents=True)
    content = write_input(tmp_path / "in" / "deep" / "deeper" / "rows.jsonl")
    os.symlink("../..", tmp_path / "in" / "deep" / "deeper" / "loop")  # no name through the loop escapes the check
    config = DataConfig(path=str(tmp_path / "in" / "**" / "*.jsonl"))
    for out in (tmp_path / "in" / "deep" / "deeper" / "rows.jsonl", tmp_path / "in" / "deep" / "deeper" / "loop" /
                "deep" / "deeper" / "rows.jsonl"):
        with pytest.raises(ConfigError, match="is one of the input files"):
            clean_file(tmp_path / "in" / "**" / "*.jsonl", out, config, tiny_tokenizer, overwrite=True)
    assert (tmp_path / "in" / "deep" / "deeper" / "rows.jsonl").read_bytes() == content
    import datasets

    datasets.Dataset.from_dict({"prompt": ["a"], "completion": ["b"]}).save_to_disk(tmp_path / "sets" / "one")
    with pytest.raises(ConfigError, match=r"inside the input folder .*sets/one \(write outside the dataset folder\)$"):
        clean_file(tmp_path / "sets" / "*", tmp_path / "sets" / "one" / "x.jsonl", config, tiny_tokenizer)
