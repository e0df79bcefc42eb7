"""The request log: one flushed line per record, rotation by size, a reader that survives a cut-off line; reading
it back for the monitor and the feedback export (records by kind, timestamps, the run a log is judged against)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tunesmith.errors import RunError
from tunesmith.monitor.request_log import (
    LOG_FILE,
    RequestLog,
    SkippedLines,
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


def test_a_line_cut_off_by_a_crash_is_skipped_quietly_and_damage_elsewhere_is_named(tmp_path, caplog):
    log = RequestLog(tmp_path)
    log.write({"kind": "request", "id": "a"})
    log.write({"kind": "request", "id": "b"})
    log.close()
    with open(tmp_path / LOG_FILE, "a") as handle:
        handle.write('{"kind": "request", "id": "c", "ans')  # a write the crash cut short
    skipped = SkippedLines()
    assert [record["id"] for record in read_log(tmp_path, skipped)] == ["a", "b"]
    assert skipped.count == 0 and not caplog.records
    (tmp_path / LOG_FILE).write_text('{"kind": "request", "id": "a"}\nnot json\n{"kind": "request", "id": "b"}\n')
    assert [record["id"] for record in read_log(tmp_path, skipped)] == ["a", "b"]
    assert skipped.count == 1
    assert [r.getMessage() for r in caplog.records] == [f"{tmp_path / LOG_FILE}:2: skipped, not a log record: not "
                                                        "valid JSON"]


@pytest.mark.parametrize(("line", "why"), [
    (b"[1, 2]", "a JSON list, not an object"),
    (b"42", "a JSON int, not an object"),
    (b'"request"', "a JSON str, not an object"),
    (b"null", "a JSON NoneType, not an object"),
    (b'{"id": "x"}', "it has no kind"),
    (b'{"kind": "request", "id": "x", "status": "500"}', "status is a str, not a whole number"),
    (b'{"kind": "request", "id": "x", "status": true}', "status is True, not a whole number"),
    (b'{"kind": "request", "id": "x", "label": ["spam"]}', "label is a list, not a string"),
    (b'{"kind": "feedback", "id": "x", "correction": {"text": "y"}}', "correction is a dict, not a string"),
    (b'{"kind": "request", "id": 7}', "id is a int, not a string"),
    (b'{"kind": "request", "id": "x", "time": "yesterday"}', "time 'yesterday' is not an ISO 8601 time"),
    (b'{"kind": "request", "id": "x", "messages": [{"role": "user"}]}',
     "messages are not each a role and a content string"),
    (b'{"kind": "request", "id": "x", "messages": "hi"}', "messages is a str, not a list"),
    (b'{"kind": "request", "id": "caf\xe9"}', "byte 31 is not UTF-8"),
    (b"[" * 100_000, "not valid JSON"),
])
def test_a_line_that_is_not_a_record_is_skipped_counted_and_named(tmp_path, caplog, line, why):
    good = b'{"kind": "request", "id": "a", "status": 200, "latency_s": 0.5, "time": "2026-01-01T00:00:00+00:00"}'
    (tmp_path / LOG_FILE).write_bytes(good + b"\n" + line + b"\n" + good.replace(b'"a"', b'"b"') + b"\n")
    records = read_records(tmp_path)
    assert [record["id"] for record in records.requests] == ["a", "b"] and records.skipped_lines == 1
    assert [r.getMessage() for r in caplog.records] == [f"{tmp_path / LOG_FILE}:2: skipped, not a log record: {why}"]


def test_a_figure_that_is_not_a_number_leaves_the_record_in(tmp_path, caplog):
    (tmp_path / LOG_FILE).write_text('{"kind": "request", "id": "a", "latency_s": NaN, "novelty": "high"}\n')
    assert [r["id"] for r in read_records(tmp_path).requests] == ["a"] and not caplog.records


def test_past_ten_skipped_lines_the_rest_are_counted_in_one_warning(tmp_path, caplog):
    (tmp_path / LOG_FILE).write_text("[]\n" * 25 + '{"kind": "request", "id": "a"}\n')
    assert read_records(tmp_path).skipped_lines == 25
    assert len(caplog.records) == 11
    assert caplog.records[-1].getMessage() == ("more lines are not log records; they are skipped and counted, not "
                                               "named")


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
