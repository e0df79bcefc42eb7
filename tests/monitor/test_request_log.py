"""The request log: one flushed line per record, rotation by size, a reader that survives a cut-off line; reading
it back for the monitor and the feedback export (records by kind, timestamps, the run a log is judged against)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tunesmith.errors import RunError
from tunesmith.monitor.request_log import (
    LOG_FILE,
    RequestLog,
    log_files,
    parse_time,
    read_log,
    read_records,
    served_run,
)


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


def test_records_by_kind_keep_the_latest_shadow_and_feedback(tmp_path, request_record, write_log):
    folder = write_log(tmp_path / "logs", [
        request_record(1), request_record(2),
        {"kind": "shadow", "id": "req-1", "model": "s", "label": "a"},
        {"kind": "feedback", "id": "req-1", "rating": "up"},
        {"kind": "feedback", "id": "req-1", "rating": "down", "correction": "better"},
    ])
    records = read_records(folder)
    assert [r["id"] for r in records.requests] == ["req-1", "req-2"]
    assert records.shadows["req-1"]["label"] == "a"
    assert records.feedback["req-1"]["rating"] == "down" and records.feedback_records == 2


def test_times_are_utc_aware():
    expected = datetime(2026, 11, 30, 8, 0, 1, 500000, tzinfo=timezone.utc)
    assert parse_time("2026-11-30T08:00:01.500+00:00") == expected
    assert parse_time("2026-11-30T08:00:01.500Z") == expected
    assert parse_time("2026-11-30T08:00:01.500") == expected


def test_served_run_is_the_given_run_else_the_primary_of_served_json(tmp_path, run_folder, spam_rows, write_log):
    run = run_folder("run", spam_rows(20))
    manifest = {"models": {"tuned": {"run": str(run.root), "model": "m"}, "base": {"run": None, "model": "b"}},
                "primary": "tuned", "shadow": "base"}
    logs = write_log(tmp_path / "logs", [], manifest)
    assert served_run_of(logs) == (run.root, "tuned", "")
    assert served_run_of(logs, run.root) == (run.root, "tuned", "")  # named in served.json: its requests only
    assert served_run_of(write_log(tmp_path / "bare", []), run.root) == (run.root, None, "")
    assert "is missing" in served_run_of(tmp_path / "bare")[2]
    gone = {**manifest, "models": {"tuned": {"run": str(tmp_path / "deleted"), "model": "m"}}}
    assert "is not a run folder here" in served_run_of(write_log(tmp_path / "gone", [], gone))[2]
    with pytest.raises(RunError, match="not a tunesmith run folder"):
        served_run(logs, tmp_path)


def served_run_of(folder, run=None) -> tuple:
    found = served_run(folder, run)
    return (found.run.root if found.run else None), found.model, found.missing
