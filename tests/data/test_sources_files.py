"""Reading compressed files, globs and `datasets.save_to_disk` folders, and lazy `iter_rows`."""

from __future__ import annotations

import gzip
import json

import pytest
import zstandard

from tunesmith.data.readers import iter_rows, read_rows
from tunesmith.errors import DataError

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
    assert [(row.source, row.data["n"]) for row in rows] == [
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
