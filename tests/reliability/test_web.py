"""Faults at the door of both web apps (`tunesmith serve`, `tunesmith ui`): a hostile Host header (DNS rebinding)
is a clear 400 before anything else looks at the request, even with the right key or token (the server logs it as
a refused request); a name the user admitted is answered; a port in use is one line for both commands."""

from __future__ import annotations

import json
import socket
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from tunesmith.cli import main
from tunesmith.serve import ServerSettings, create_server_app, load_served
from tunesmith.ui import UiSettings, create_ui_app

LOOPBACK = "http://127.0.0.1"
HOSTILE = ["evil.example", "evil.example:8000", "127.0.0.1.nip.io", "localhost.evil.example:7860", "[::2]:80",
           "evil.example@127.0.0.1", "0.0.0.0:8000"]
"""Host headers a page of another site can make a browser send to a loopback server (its own name resolved to
127.0.0.1), and malformed ones."""


@pytest.fixture()
def server(lora_run, tmp_path):
    """A server with an API key over a tiny LoRA run, ready, and its request log folder."""
    settings = ServerSettings(api_key="k3y", log_dir=tmp_path / "logs")
    with TestClient(create_server_app(lambda: load_served([str(lora_run)]), settings), base_url=LOOPBACK) as client:
        deadline = time.monotonic() + 60
        while client.get("/ready").status_code != 200:
            assert time.monotonic() < deadline, "the server did not get ready"
            time.sleep(0.05)
        yield client, tmp_path / "logs"


def test_the_server_refuses_a_foreign_host_even_with_the_right_key(server):
    client, logs = server
    key = {"Authorization": "Bearer k3y"}
    for host in HOSTILE:
        for response in (client.post("/v1/chat/completions", json={"messages": []}, headers={**key, "Host": host}),
                         client.get("/v1/models", headers={**key, "Host": host}),
                         client.get("/health", headers={"Host": host}),
                         client.get("/v1/models", headers={"Host": host})):  # refused before the key is checked
            assert response.status_code == 400, (host, response.text)
            error = response.json()["error"]
            assert error["type"] == "invalid_request_error" and error["code"] == "invalid_host"
            assert "Traceback" not in error["message"] and "\n" not in error["message"]
    message = client.get("/v1/models", headers={**key, "Host": "evil.example"}).json()["error"]["message"]
    assert "--allowed-host evil.example" in message
    # Nothing behind the check saw them (the metrics counted no request), but each is a line of the request log
    # (a refusal without a model), and no line holds the key.
    logged = (logs / "requests.jsonl").read_text()
    refused = [record for record in map(json.loads, logged.splitlines()) if record["status"] == 400]
    assert len(refused) == 4 * len(HOSTILE) + 1
    assert all(r["model"] is None and r["kind"] == "request" and "host" in r["error"].lower() for r in refused)
    assert {r["route"] for r in refused} == {"/v1/chat/completions", "/v1/models", "/health"}
    assert "k3y" not in logged
    assert 'status="400"' not in client.get("/metrics", headers=key).text
    assert client.get("/v1/models", headers={**key, "Host": "localhost:1234"}).status_code == 200
    assert client.get("/v1/models", headers={**key, "Host": "[::1]:8000"}).status_code == 200


def test_the_ui_refuses_a_foreign_host_even_with_the_right_token(tmp_path):
    client = TestClient(create_ui_app(UiSettings(runs_dir=tmp_path, token="t0ken")), base_url=LOOPBACK,
                        follow_redirects=False)
    bearer = {"Authorization": "Bearer t0ken"}
    assert client.get("/api/runs", headers=bearer).json() == []
    for host in HOSTILE:
        api = client.get("/api/runs", headers={**bearer, "Host": host})
        assert api.status_code == 400 and "host" in api.json()["error"].lower()
        page = client.get("/", headers={**bearer, "Host": host})
        assert page.status_code == 400 and page.headers["content-type"].startswith("text/html")
        assert 'id="error-message"' in page.text and 'id="no-runs"' not in page.text and "Traceback" not in page.text
        # The token link would set a session cookie: refused before that, and before the CSRF check of a POST.
        linked = client.get("/?token=t0ken", headers={"Host": host})
        assert linked.status_code == 400 and "set-cookie" not in linked.headers
        assert client.post("/api/review/undo", json={}, headers={**bearer, "Host": host}).status_code == 400
    page = client.get("/", headers={**bearer, "Host": "evil.example"})
    assert "evil.example" in page.text and "--allowed-host evil.example" in page.text


def test_an_admitted_name_is_answered(tmp_path):
    client = TestClient(create_ui_app(UiSettings(runs_dir=tmp_path, allowed_hosts=("models.example",))),
                        base_url="http://models.example:8443")
    assert client.get("/api/runs").status_code == 200
    assert client.get("/api/runs", headers={"Host": "other.example"}).status_code == 400


def test_a_foreign_host_is_refused_over_a_real_socket(serving, tmp_path):
    with serving(create_ui_app(UiSettings(runs_dir=tmp_path)), "/api/runs") as url:
        refused = httpx.get(f"{url}/api/runs", headers={"Host": "rebound.example"})
        assert refused.status_code == 400 and "rebound.example" in refused.json()["error"]
        assert httpx.get(f"{url}/api/runs", headers={"Host": "localhost"}).status_code == 200


@pytest.mark.parametrize("command", [["serve", "some-run"], ["ui", "."]])
def test_a_port_in_use_is_one_line_for_both_commands(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main([*command, "--port", str(port)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"cannot listen on 127.0.0.1:{port}" in error and "--port" in error


@pytest.mark.parametrize("command", [["serve", "some-run"], ["ui", "."]])
def test_a_malformed_allowed_host_is_one_line_for_both_commands(command, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "some-run").mkdir()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: the error comes before anything listens
    assert main([*command, "--port", str(port), "--allowed-host", "https://models.example/"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--allowed-host" in error and "Traceback" not in error
