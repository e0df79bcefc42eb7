"""`tunesmith monitor` on hostile or damaged input: a log whose figures are not numbers, a damaged or foreign
reference, records without a time cut by time, a log written while it is read. Each is one line or a figure
left out, never a traceback."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from tunesmith.cli import main
from tunesmith.config import save_config, validate_config
from tunesmith.monitor.analysis import monitor_log
from tunesmith.monitor.request_log import LOG_FILE, RequestLog
from tunesmith.results.reference import Reference, write_reference
from tunesmith.run_dir import RunDir

START = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)


def _request(number: int, **fields) -> dict:
    return {"kind": "request", "id": f"req-{number}", "time": (START + timedelta(seconds=number)).isoformat(),
            "model": "tuned", "route": "/v1/classify", "status": 200, "latency_s": 0.1, "prompt_tokens": 20,
            "text": f"message {number}", "label": "ham", **fields}


def live_stream(seed: int, count: int, first: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [_request(first + n, novelty=float(rng.random()), confidence=float(rng.random()),
                     prompt_tokens=int(rng.integers(10, 50))) for n in range(count)]


def _write_log(folder, records):
    log = RequestLog(folder)
    for record in records:
        log.write(record)
    log.close()
    return folder


@pytest.fixture()
def spam_run(tmp_path, tiny_model_dir):
    """A run folder (config only) with a reference drawn as `live_stream` draws requests."""
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"text": f"t{n}", "label": "ham" if n % 3 else "spam"}) + "\n"
                            for n in range(30)))
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    save_config(validate_config({"model": {"name": str(tiny_model_dir)}, "data": {"path": str(data)}}),
                run.config_path)
    rng = np.random.default_rng(100)
    write_reference(run.reference, Reference(
        "classification", {"test": 500}, "", [int(v) for v in rng.integers(10, 50, 500)],
        novelty=[float(v) for v in rng.random(500)], labels=["ham", "spam"], predicted_labels=["ham"] * 500,
        confidence=[float(v) for v in rng.random(500)], confidence_kind="label_probability"))
    return run


def test_figures_that_are_not_numbers_are_left_out(tmp_path, spam_run):
    records = live_stream(0, 40)
    for record, junk in zip(records, ["high", True, None, [1], {"a": 1}]):
        record.update(novelty=junk, confidence=junk, prompt_tokens=junk, probability=junk)
    folder = _write_log(tmp_path / "logs", records)
    (folder / LOG_FILE).write_text((folder / LOG_FILE).read_text().replace('"novelty": 0.', '"novelty": NaN, "x": 0.',
                                                                            1))
    drift = monitor_log(folder, spam_run.root).windows[0]["figures"]["drift"]
    assert drift["novelty"]["live"] == 34 and drift["prompt_length"]["live"] == 35
    assert drift["confidence"]["live"] == 35


def test_a_damaged_or_foreign_reference_is_one_line(tmp_path, spam_run, capsys):
    folder = _write_log(tmp_path / "logs", [_request(0)])
    spam_run.reference.write_text("{not json")
    assert main(["monitor", str(folder), "--run", str(spam_run.root)]) == 2
    assert str(spam_run.reference) in capsys.readouterr().err
    spam_run.reference.write_text(json.dumps({"version": 99}))
    assert main(["monitor", str(folder), "--run", str(spam_run.root)]) == 2
    err = capsys.readouterr().err
    assert "is not a reference of version 1" in err and err.count("\n") == 1
    spam_run.reference.write_text(json.dumps({"version": 1, "task": "classification", "surprise": 1}))
    assert main(["monitor", str(folder), "--run", str(spam_run.root)]) == 2
    assert "is damaged" in capsys.readouterr().err


def test_records_without_a_time_cannot_be_cut_by_time(tmp_path, capsys):
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / LOG_FILE).write_text(json.dumps({**_request(0), "time": None}) + "\n")
    assert main(["monitor", str(folder), "--window", "1h"]) == 2
    assert "request 'req-0' has no time" in capsys.readouterr().err
    assert main(["monitor", str(folder), "--window", "10"]) == 0  # a count needs no time


def test_a_log_written_while_it_is_read(tmp_path, spam_run):
    log = RequestLog(tmp_path / "logs", max_bytes=20_000)
    stop = threading.Event()

    def serve():
        number = 0
        while not stop.is_set():
            for record in live_stream(number, 10, number * 10):
                log.write(record)
            number += 1

    writer = threading.Thread(target=serve)
    writer.start()
    try:
        for _ in range(5):
            result = monitor_log(tmp_path / "logs", spam_run.root, window="50")
            assert sum(w["requests"] for w in result.windows) == result.traffic["requests"]
    finally:
        stop.set()
        writer.join()
        log.close()
