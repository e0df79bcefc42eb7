"""Faults of `tunesmith serve` that one request or one disk must not turn into a failure for everyone: sampling
settings out of bounds, a prompt the model cannot run, a body or prompt too large to tokenize, a request past its
deadline, a load that fails for a reason that is not tunesmith's (a read-only disk, a library's own error); each
failed generation is one line of the request log and the monitor counts it once, skipping (and naming) log lines that
are not records; a foreign Host is refused."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tunesmith.monitor import monitor_log
from tunesmith.monitor.request_log import LOG_FILE, RequestLog, read_log
from tunesmith.run_dir import RunDir
from tunesmith.serve import load_served

CHAT = "/v1/chat/completions"
BAD_TOKEN = "<never-trained>"


def chat(text: str, **fields) -> dict:
    return {"messages": [{"role": "user", "content": text}], **fields}


def wait_for(condition, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def failed_ready(url: str, timeout_s: float = 60) -> dict:
    """/ready's answer once it no longer says loading."""
    deadline = time.monotonic() + timeout_s
    while (answer := httpx.get(f"{url}/ready")).json().get("status") == "loading":
        assert time.monotonic() < deadline, "/ready still says loading"
        time.sleep(0.05)
    assert answer.status_code == 503
    return answer.json()


@pytest.fixture()
def mismatched_model(tmp_path, tiny_model_dir) -> Path:
    """The tiny model folder whose tokenizer has one token more than the model's embedding (a token added without
    resizing the model): a prompt holding it fails the model's own forward with an IndexError, others run."""
    from transformers import AutoTokenizer

    folder = tmp_path / "mismatched"
    shutil.copytree(tiny_model_dir, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.add_tokens([BAD_TOKEN])
    tokenizer.save_pretrained(folder)
    return folder


# ---- one request breaks serving for nobody ----------------------------------------------------------------------


def test_sampling_settings_out_of_bounds_are_a_400_naming_the_range_and_the_request_in_flight_finishes(
        start_server, lora_run, tmp_path):
    url, state = start_server(lambda: load_served([str(lora_run)]), max_tokens=400)
    refused = {
        "seed": ({"seed": 2**64}, "seed: is 18446744073709551616; it must be an integer from 0 to "
                                  "18446744073709551615 (2**64-1)"),
        "temperature": ({"temperature": 1e-39}, "temperature: is 1e-39; it must be 0 (greedy) or from 0.001 to 2"),
        "top_p": ({"top_p": 0}, "top_p: is 0; it must be above 0 and at most 1"),
        "stop": ({"stop": ["x" * 201]}, "stop: give at most 4 non-empty stop strings of at most 200 characters each"),
        "max_tokens": ({"max_tokens": 10**30}, "max_tokens is 1000000000000000000000000000000; this server allows "
                                               "at most 400"),
    }
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(httpx.post, url + CHAT, json=chat("hello", max_tokens=400), timeout=60)
        while state.engine.active() == 0:
            time.sleep(0.01)
        for param, (fields, message) in refused.items():
            answer = httpx.post(url + CHAT, json=chat("x", **fields), timeout=10)
            assert answer.status_code == 400
            assert answer.json()["error"] == {"message": message, "type": "invalid_request_error", "param": param,
                                              "code": None}
        assert in_flight.result().status_code == 200
        assert in_flight.result().json()["choices"][0]["finish_reason"] == "length"
    assert httpx.post(url + CHAT, json=chat("x", seed=2**64 - 1, temperature=0.001, max_tokens=2)).status_code == 200
    statuses = [r["status"] for r in read_log(tmp_path / "logs") if r["kind"] == "request"]
    assert sorted(statuses) == [200, 200, 400, 400, 400, 400, 400]  # each request one line


def test_a_prompt_the_model_cannot_run_fails_alone_and_is_logged_once(start_server, mismatched_model, tmp_path):
    """Prefilled in one batch with a good prompt, and again while another request decodes: only the request whose
    prompt fails the forward pass gets its 500; each failure is one line of the log, and the monitor counts two
    server errors for two failed generations."""
    url, state = start_server(lambda: load_served([str(mismatched_model)]), batch_window_s=0.5, max_tokens=400)
    failed = {"message": "generation failed: IndexError: index out of range in self", "type": "server_error",
              "param": None, "code": None}
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        bad, good = pool.map(lambda text: httpx.post(url + CHAT, json=chat(text, max_tokens=4), timeout=60),
                             [f"say {BAD_TOKEN}", "say hello"])
        assert (bad.status_code, bad.json()["error"]) == (500, failed) and good.status_code == 200
        in_flight = pool.submit(httpx.post, url + CHAT, json=chat("hello", max_tokens=400), timeout=60)
        while state.engine.active() == 0:
            time.sleep(0.01)
        bad = httpx.post(url + CHAT, json=chat(f"again {BAD_TOKEN}", max_tokens=4), timeout=60)
        assert (bad.status_code, bad.json()["error"]) == (500, failed)
        assert in_flight.result().status_code == 200
    wait_for(lambda: state.engine.active() == 0)  # the row leaves just after its answer is handed over
    records = [r for r in read_log(tmp_path / "logs") if r["kind"] == "request"]
    assert sorted(r["status"] for r in records) == [200, 200, 500, 500]
    assert all(r["model"] == "mismatched" and r["id"].startswith("chatcmpl-") for r in records)
    assert [r["error"] for r in records if r["status"] == 500] == [failed["message"]] * 2
    traffic = monitor_log(tmp_path / "logs").traffic
    assert (traffic["requests"], traffic["errors"], traffic["server_errors"]) == (4, 2, 2)


def test_a_request_past_its_deadline_gets_a_408_and_leaves_no_row(start_server, lora_run, tmp_path):
    url, state = start_server(lambda: load_served([str(lora_run)]), request_timeout_s=0.0)
    answer = httpx.post(url + CHAT, json=chat("hello", max_tokens=400), timeout=30)
    assert answer.status_code == 408 and answer.json()["error"] == {
        "message": "the request ran past the server's timeout and was cancelled", "type": "timeout", "param": None,
        "code": "request_timeout"}
    wait_for(lambda: state.engine.active() == 0 and state.engine.queue_depth() == 0)
    (record,) = [r for r in read_log(tmp_path / "logs") if r["kind"] == "request"]
    assert record["status"] == 408 and record["finish_reason"] == "timeout"


# ---- sizes: refused before they cost the event loop -------------------------------------------------------------


def slowest_health(url: str, stop: threading.Event) -> float:
    """The slowest /health answer, asked every 50 ms until ``stop``."""
    slowest = 0.0
    while not stop.is_set():
        started = time.monotonic()
        assert httpx.get(f"{url}/health", timeout=30).status_code == 200
        slowest = max(slowest, time.monotonic() - started)
        time.sleep(0.05)
    return slowest


def test_a_40_mb_body_is_refused_unread_and_health_stays_responsive(start_server, lora_run, tmp_path):
    url, _ = start_server(lambda: load_served([str(lora_run)]))
    body = json.dumps(chat("x" * 40_000_000)).encode()
    stop = threading.Event()

    def chunked():  # no Content-Length: read up to the cap, then refused
        for start in range(0, len(body), 1 << 16):
            yield body[start:start + (1 << 16)]

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        health = pool.submit(slowest_health, url, stop)
        started = time.monotonic()
        declared = httpx.post(url + CHAT, content=body, headers={"content-type": "application/json"}, timeout=60)
        streamed = httpx.post(url + CHAT, content=chunked(), headers={"content-type": "application/json"}, timeout=60)
        took = time.monotonic() - started
        stop.set()
        assert health.result() < 1.0
    assert took < 10
    assert declared.status_code == 413 and declared.json()["error"] == {
        "message": f"the request body is {len(body)} bytes; this server takes at most 4194304 bytes",
        "type": "invalid_request_error", "param": "body", "code": "request_too_large"}
    assert streamed.status_code == 413 and streamed.json()["error"]["message"] == (
        "the request body is over 4194304 bytes; this server takes at most 4194304 bytes")
    records = [r for r in read_log(tmp_path / "logs") if r["kind"] == "request"]
    assert [(r["status"], r["route"], r["model"]) for r in records] == [(413, CHAT, None)] * 2


def test_a_prompt_too_long_to_fit_is_refused_before_it_is_tokenized(start_server, lora_run):
    RunDir(lora_run).data_summary.write_text(json.dumps({"format": "classification", "labels": ["ham", "spam"]}))
    url, _ = start_server(lambda: load_served([str(lora_run)]), max_prompt_tokens=100)
    stop = threading.Event()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        health = pool.submit(slowest_health, url, stop)
        started = time.monotonic()
        answers = [httpx.post(url + CHAT, json=chat("y" * 3_000_000), timeout=60),
                   httpx.post(f"{url}/v1/classify", json={"text": "y" * 3_000_000}, timeout=60)]
        took = time.monotonic() - started
        stop.set()
        assert health.result() < 1.0
    assert took < 5
    assert answers[0].status_code == 400 and answers[0].json()["error"] == {
        "message": "the prompt is 3000000 characters; this server allows at most 3200 (32 per token of its 100-token "
                   "limit)", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}
    assert answers[1].status_code == 400 and answers[1].json()["error"]["param"] == "text"
    under = httpx.post(url + CHAT, json=chat("y " * 1000), timeout=60)  # within the characters, over the tokens
    assert under.status_code == 400 and under.json()["error"]["message"].startswith("the prompt is ")
    assert "tokens; this server allows at most 100" in under.json()["error"]["message"]


# ---- loads that fail for reasons that are not tunesmith's --------------------------------------------------------


@pytest.fixture()
def read_only_copy(tmp_path):
    """``read_only_copy(folder) -> copy``: ``folder`` copied onto a tmpfs mounted read-only, which refuses writes to
    root too (chmod does not). Skipped, saying why, where mounting is not allowed."""
    mount = tmp_path / "read-only"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a read-only filesystem needs root (chmod does not stop every writer)")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")

    def copy(folder: Path) -> Path:
        shutil.copytree(folder, mount / folder.name, symlinks=True)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        return mount / folder.name

    yield copy
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_run_on_a_read_only_disk_says_failed_with_the_reason_or_serves_with_a_log_elsewhere(
        start_server, lora_run, read_only_copy, tmp_path):
    run = read_only_copy(lora_run)
    with pytest.raises(OSError, match="Read-only file system"):
        (run / "probe").write_text("x")  # the disk refuses root too
    logs = run / "serve_logs"
    url, state = start_server(lambda: load_served([str(run)]), wait_ready=False, log_dir=logs)
    assert failed_ready(url) == {"status": "failed", "error": (
        f"the request log cannot be opened: cannot write {logs}/requests.jsonl: read-only file system (make {logs} "
        "writable, or write somewhere else); serve with --log-dir on a writable disk")}
    refused = httpx.post(url + CHAT, json=chat("hello"))
    assert refused.status_code == 503 and refused.json()["error"]["message"] == state.load_error
    url, _ = start_server(lambda: load_served([str(run)]), log_dir=tmp_path / "elsewhere")
    assert httpx.post(url + CHAT, json=chat("hello", max_tokens=2), timeout=60).status_code == 200


def test_a_first_load_that_fails_outside_tunesmith_says_failed_not_loading(start_server, tiny_model_dir, tmp_path):
    """A model folder whose config.json transformers refuses with an error of its own (5 attention heads do not
    divide its hidden size of 32): /ready says failed, in one line, rather than loading forever."""
    folder = tmp_path / "inconsistent"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "num_attention_heads": 5}))
    url, state = start_server(lambda: load_served([str(folder)]), wait_ready=False)
    answer = failed_ready(url)
    assert answer["status"] == "failed" and "\n" not in answer["error"] and len(answer["error"]) < 700
    assert answer["error"].startswith("the model failed to load: StrictDataclassClassValidationError: Class "
                                      "validation error for validator 'validate_architecture': ")
    assert httpx.post(url + CHAT, json=chat("hello")).json()["error"]["message"] == answer["error"]


# ---- the Host header (DNS rebinding) -----------------------------------------------------------------------------


def test_a_keyless_loopback_server_refuses_a_foreign_host_before_any_model_answers(start_server, lora_run, tmp_path):
    url, _ = start_server(lambda: load_served([str(lora_run)]))  # the default: loopback, no API key
    for path, method in [(CHAT, "POST"), ("/v1/models", "GET"), ("/health", "GET")]:
        answer = httpx.request(method, url + path, headers={"Host": "rebound.example:8000"}, json=chat("hello"))
        assert answer.status_code == 400 and answer.json()["error"] == {
            "message": "this server does not answer to the host 'rebound.example' (it answers to localhost, loopback "
                       "addresses, the address it listens on and the names given with --allowed-host): to reach it "
                       "by this name, start it with --allowed-host rebound.example",
            "type": "invalid_request_error", "param": None, "code": "invalid_host"}
    records = [r for r in read_log(tmp_path / "logs") if r["kind"] == "request"]
    assert [(r["status"], r["model"]) for r in records] == [(400, None)] * 3


# ---- the monitor reads a damaged log -----------------------------------------------------------------------------


def test_monitor_skips_log_lines_that_are_not_records_naming_each_and_counts_them(cli, tmp_path, caplog):
    folder = tmp_path / "logs"
    log = RequestLog(folder)
    for number, status in enumerate([200, 500]):
        log.write({"kind": "request", "id": f"req-{number}", "model": "m", "route": CHAT, "status": status,
                   "latency_s": 0.5, "prompt_tokens": 3, "completion_tokens": 2})
    log.close()
    last = {"kind": "request", "id": "req-2", "model": "m", "route": CHAT, "status": 200, "latency_s": 0.5,
            "time": "2026-01-01T00:00:00+00:00"}
    with open(folder / LOG_FILE, "ab") as handle:
        handle.write(b'[{"kind": "request"}]\n42\n{"kind": "request", "id": "x", "status": "500"}\n'
                     b'{"kind": "request", "id": "caf\xe9"}\n' + json.dumps(last).encode() + b"\n")
    code, out, error = cli("monitor", str(folder), "--json")
    result = json.loads(out)
    assert (code, error, [b["check"] for b in result["breaches"]]) == (1, "", ["error_rate"])  # 1 in 3 failed
    traffic = result["traffic"]
    assert (traffic["requests"], traffic["server_errors"], traffic["skipped_lines"]) == (3, 1, 4)
    where = folder / LOG_FILE
    assert [r.getMessage() for r in caplog.records if "not a log record" in r.getMessage()] == [
        f"{where}:3: skipped, not a log record: a JSON list, not an object",
        f"{where}:4: skipped, not a log record: a JSON int, not an object",
        f"{where}:5: skipped, not a log record: status is a str, not a whole number",
        f"{where}:6: skipped, not a log record: byte 31 is not UTF-8"]
