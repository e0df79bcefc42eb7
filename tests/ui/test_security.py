"""Who may use the UI: loopback unless a token is set; the token by link (then a cookie) or bearer header; CSRF on
every POST."""

from __future__ import annotations

import socket

import pytest
from fastapi.testclient import TestClient

from tunesmith.cli import main
from tunesmith.ui import UiSettings, create_ui_app
from tunesmith.ui.security import TOKEN_COOKIE, UI_BIND, session_value

LOOPBACK = "http://127.0.0.1"
"""The test client's address: the UI answers only to loopback names (its default ``testserver`` is refused)."""


def test_binding_beyond_loopback_needs_a_token(error_of, tmp_path, capsys):
    UI_BIND.check("127.0.0.1", None)
    UI_BIND.check("::1", None)
    UI_BIND.check("0.0.0.0", "t0ken")
    assert "--token" in error_of(lambda: UI_BIND.check("0.0.0.0", None))
    assert main(["ui", str(tmp_path), "--host", "0.0.0.0"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--token" in error and "Traceback" not in error


def test_a_missing_runs_folder_or_a_taken_port_is_one_line(tmp_path, capsys):
    assert main(["ui", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert main(["ui", str(tmp_path), "--port", str(taken.getsockname()[1])]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--port" in error


@pytest.fixture()
def guarded(runs_dir):
    return TestClient(create_ui_app(UiSettings(runs_dir=runs_dir, token="s3cret")), base_url=LOOPBACK,
                      follow_redirects=False)


def test_with_a_token_every_page_and_api_needs_it(guarded):
    for path in ("/", "/runs/spam-done", "/api/runs", "/review/spam-done", "/static/ui.js?x=1"):
        assert guarded.get(path).status_code == 401, path
    assert guarded.get("/?token=wrong").status_code == 401
    assert guarded.get("/api/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert guarded.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_a_browser_without_the_token_gets_a_page_saying_how_to_open_the_ui_and_scripts_get_json(guarded):
    page = guarded.get("/runs/spam-done", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert page.status_code == 401 and page.headers["content-type"].startswith("text/html")
    assert "Open the link that <code>tunesmith ui</code> printed" in page.text and "<script" not in page.text
    assert "That token is not" in guarded.get("/?token=wrong", headers={"Accept": "text/html"}).text
    for path in ("/api/runs", "/static/ui.js"):  # the API and a page's files answer JSON even to a browser
        refused = guarded.get(path, headers={"Accept": "text/html"})
        assert refused.status_code == 401 and "needs its token" in refused.json()["error"], path
    assert "needs its token" in guarded.get("/").json()["error"]  # curl, scripts: no text/html asked for


def test_the_token_link_sets_a_cookie_and_leaves_the_address(guarded):
    response = guarded.get("/compare?runs=spam-done,spam-lr-high&token=s3cret")
    assert response.status_code == 303 and response.headers["location"] == "/compare?runs=spam-done%2Cspam-lr-high"
    cookie = response.cookies[TOKEN_COOKIE]
    assert cookie == session_value("s3cret") and "s3cret" not in cookie  # the cookie is not the token
    assert guarded.get(response.headers["location"]).status_code == 200
    guarded.cookies.clear()
    elsewhere = guarded.get(f"{LOOPBACK}//evil.example/x?token=s3cret")
    assert elsewhere.headers["location"] == "/evil.example/x"  # never "//evil.example": another site


def test_posts_need_the_sessions_csrf_token(runs_dir):
    client = TestClient(create_ui_app(UiSettings(runs_dir=runs_dir)), base_url=LOOPBACK)
    body = {"run": "spam-done", "reviewer": "nobody"}  # past the CSRF check: 404, and no state changes
    assert client.post("/api/review/undo", json=body).status_code == 403  # no cookie, no header
    client.get("/")
    token = client.cookies["tunesmith_csrf"]
    assert client.post("/api/review/undo", json=body, headers={"X-CSRF-Token": token + "x"}).status_code == 403
    assert client.post("/api/review/undo", json=body, headers={"X-CSRF-Token": token}).status_code == 404
    other = TestClient(create_ui_app(UiSettings(runs_dir=runs_dir)), base_url=LOOPBACK)
    other.get("/")
    assert other.cookies["tunesmith_csrf"] != token  # one per session
