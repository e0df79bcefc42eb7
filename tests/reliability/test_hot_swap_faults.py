"""Faults around hot-swap: a reload while the marker points at a damaged run or nowhere keeps the old run answering
and says why; concurrent reloads load once; hostile `POST /admin/reload` requests are refused in JSON; reloading
from beyond loopback needs the API key."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from tunesmith import distributed
from tunesmith.monitor.request_log import read_log
from tunesmith.promotion import marked_run, promote
from tunesmith.run_dir import RunDir
from tunesmith.serve import ServerSettings, create_server_app, load_served

KEY = "sk-tunesmith-reload-4242"
CHAT = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 4}


@pytest.fixture()
def marker_server(tmp_path, serving, lora_run):
    """``marker_server(**settings) -> (url, state, marker)``: a server watching ``tmp_path/current`` (first on the
    LoRA run), logging to tmp_path/logs."""
    marker = tmp_path / "current"
    promote(lora_run, marker, force=True)
    with contextlib.ExitStack() as running:
        def start(load=None, **settings):
            settings = ServerSettings(port=distributed.free_port(), log_dir=tmp_path / "logs", watch=marker,
                                      watch_interval_s=0.05, **settings)
            app = create_server_app(load or (lambda: load_served([str(marked_run(marker).root)])), settings)
            url = running.enter_context(serving(app, "/ready", timeout_s=60, port=settings.port))
            return url, app.state.tunesmith, marker

        yield start


def wait_for(condition, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_damaged_run_or_a_marker_pointing_nowhere_keeps_the_old_run_answering(marker_server, lora_run, dora_run,
                                                                                 tmp_path):
    url, state, marker = marker_server()
    broken = tmp_path / "broken-run"
    shutil.copytree(lora_run, broken)
    (RunDir(broken).best / "adapter_model.safetensors").write_bytes(b"not weights")
    for target, reason in [(broken, "Error"), (tmp_path / "gone", "which does not exist")]:
        os.replace(tmp_path / "current", tmp_path / "before")
        os.symlink(target.name, marker)
        wait_for(lambda: state.reload_error is not None)
        assert reason in state.reload_error and "previous models stay in service" in state.reload_error
        answer = httpx.post(f"{url}/v1/chat/completions", json=CHAT)
        assert answer.status_code == 200 and answer.json()["model"] == lora_run.name
        assert httpx.get(f"{url}/ready").json()["reload_error"] == state.reload_error
        asked = httpx.post(f"{url}/admin/reload", timeout=60)  # tried again on demand, failing the same way
        assert asked.status_code in (422, 500) and reason in asked.json()["error"]["message"]
        assert asked.json()["error"]["code"] == "load_failed"
        state.reload_error = None
    failures = [record for record in read_log(tmp_path / "logs") if record["kind"] == "reload"]
    assert len(failures) == 4 and all(record["status"] >= 400 and record["error"] for record in failures)
    assert all(record["run"] == str(lora_run.resolve()) for record in failures)  # still the one answering
    promote(dora_run, marker, force=True)  # a good run after bad ones is swapped in
    wait_for(lambda: state.served.primary == dora_run.name)
    assert state.reload_error is None
    assert httpx.post(f"{url}/v1/chat/completions", json=CHAT).json()["model"] == dora_run.name


def test_concurrent_reloads_load_once(marker_server, tmp_path):
    loads = []
    marker = tmp_path / "current"

    def slow_load():
        loads.append(time.monotonic())
        time.sleep(1.0)  # long enough for every reload request to arrive while the first loads
        return load_served([str(marked_run(marker).root)])

    url, state, _ = marker_server(load=slow_load)  # the marker stays: only the admin reloads
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: httpx.post(f"{url}/admin/reload", timeout=60), range(4)))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200, 409, 409, 409] and len(loads) == 2  # the first load, then one reload
    assert {answer.json()["error"]["code"] for answer in answers if answer.status_code == 409} == \
        {"reload_in_progress"}
    assert httpx.post(f"{url}/v1/chat/completions", json=CHAT).status_code == 200


def test_hostile_reload_requests_are_refused(marker_server, tmp_path):
    url, state, _ = marker_server(api_key=KEY)
    key = {"Authorization": f"Bearer {KEY}"}
    before = state.deployment
    refusals = [
        httpx.post(f"{url}/admin/reload"),  # no key
        httpx.post(f"{url}/admin/reload", headers={"Authorization": "Bearer wrong"}),
        httpx.post(f"{url}/admin/reload", headers=key, json={"target": "/etc"}),  # no path can be sent
        httpx.post(f"{url}/admin/reload", headers=key, content=b"x" * 1_000_000),
        httpx.post(f"{url}/admin/reload", headers={**key, "Host": "evil.example"}),
        httpx.get(f"{url}/admin/reload", headers=key),
    ]
    assert [answer.status_code for answer in refusals] == [401, 401, 400, 400, 400, 405]
    assert all("message" in answer.json()["error"] for answer in refusals)
    assert state.deployment is before
    assert httpx.post(f"{url}/admin/reload", headers=key, json={}, timeout=60).status_code == 200
    assert state.deployment is not before
    assert KEY not in (tmp_path / "logs" / "requests.jsonl").read_text()


@pytest.mark.parametrize("api_key", [None, KEY])
def test_a_reload_from_beyond_loopback_needs_the_key(lora_run, tmp_path, api_key):
    """Without a key a server binds loopback only, but a proxy on the machine can forward any client: the reload
    asks for a loopback client then (the test client's address, ``testclient``, is not one)."""
    settings = ServerSettings(allowed_hosts=("testserver",), log_dir=tmp_path / "logs", api_key=api_key)
    app = create_server_app(lambda: load_served([str(lora_run)]), settings)
    with TestClient(app) as client:
        wait_for(lambda: client.get("/ready").status_code == 200)
        answer = client.post("/admin/reload", headers={"Authorization": f"Bearer {KEY}"} if api_key else {})
    if api_key is None:
        assert answer.status_code == 403 and "--api-key" in answer.json()["error"]["message"]
    else:
        assert answer.status_code == 200
