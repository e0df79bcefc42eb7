"""Run files in JSON and JSON Lines: atomic writes, tolerant reads of a file being appended to."""

from __future__ import annotations

import pytest

from tunesmith.errors import RunError
from tunesmith.json_files import keep_jsonl, read_json, read_jsonl, write_json, write_jsonl


def test_jsonl_tolerates_a_half_written_last_line_only(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')
    assert read_jsonl(path) == [{"step": 1, "loss": 2.0}]
    path.write_text('\n{"step": 1, "lo\n{"step": 2, "loss": 2.0}\n\n')
    with pytest.raises(RunError, match="metrics.jsonl:2 is not valid JSON"):
        read_jsonl(path)


def test_writes_replace_the_file_whole_and_read_back(tmp_path):
    write_json(tmp_path / "a.json", {"x": [1, "é"]})
    assert read_json(tmp_path / "a.json") == {"x": [1, "é"]}
    assert read_json(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    with pytest.raises(RunError, match="bad.json is not valid JSON"):
        read_json(tmp_path / "bad.json")
    write_jsonl(tmp_path / "m.jsonl", [{"step": s} for s in range(5)])
    keep_jsonl(tmp_path / "m.jsonl", lambda line: line["step"] <= 2)
    assert read_jsonl(tmp_path / "m.jsonl") == [{"step": 0}, {"step": 1}, {"step": 2}]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp files left
