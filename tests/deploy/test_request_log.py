"""The request log: one flushed line per record, rotation by size, a reader that survives a cut-off line."""

from __future__ import annotations

import pytest

from tunesmith.deploy.request_log import LOG_FILE, RequestLog, log_files, read_log
from tunesmith.errors import RunError


def test_records_rotate_by_size_and_read_back_in_order(tmp_path):
    log = RequestLog(tmp_path, max_bytes=300)
    for number in range(12):
        log.write({"kind": "request", "id": f"r{number}", "answer": "x" * 40})
    log.close()
    files = log_files(tmp_path)
    assert len(files) > 2 and files[-1].name == LOG_FILE and files[0].name == "requests-000001.jsonl"
    assert [record["id"] for record in read_log(tmp_path)] == [f"r{number}" for number in range(12)]
    assert all(record["time"].endswith("+00:00") for record in read_log(tmp_path))


def test_a_line_cut_off_by_a_crash_is_skipped_but_damage_elsewhere_is_named(tmp_path):
    log = RequestLog(tmp_path)
    log.write({"kind": "request", "id": "a"})
    log.write({"kind": "request", "id": "b"})
    log.close()
    with open(tmp_path / LOG_FILE, "a") as handle:
        handle.write('{"kind": "request", "id": "c", "ans')  # a write the crash cut short
    assert [record["id"] for record in read_log(tmp_path)] == ["a", "b"]
    (tmp_path / LOG_FILE).write_text('{"id": "a"}\nnot json\n{"id": "b"}\n')
    with pytest.raises(RunError, match=r"requests.jsonl:2"):
        list(read_log(tmp_path))


def test_without_content_the_text_fields_are_left_out(tmp_path):
    log = RequestLog(tmp_path, log_content=False)
    log.write({"kind": "request", "id": "a", "messages": [{"role": "user", "content": "private"}], "answer": "x",
               "text": "t", "label": "spam", "prompt_tokens": 3})
    log.write({"kind": "feedback", "id": "a", "rating": "down", "correction": "secret fix"})
    log.close()
    request, feedback = read_log(tmp_path)
    assert request == {"time": request["time"], "kind": "request", "id": "a", "label": "spam", "prompt_tokens": 3}
    assert "correction" not in feedback and feedback["rating"] == "down"


def test_a_folder_without_a_log_is_a_clear_error(tmp_path, error_of):
    assert "no request log" in error_of(lambda: list(read_log(tmp_path)))
    assert "not a folder" in error_of(lambda: list(read_log(tmp_path / "missing")))
