"""The UI's routes without a browser (Starlette's test client): errors as 4xx pages or JSON and never a traceback,
names that cannot leave the runs folder, run files, the review API's statuses, and the playground's stream."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tunesmith.ui import UiSettings, create_ui_app


@pytest.fixture(scope="module")
def client(runs_dir, live_lock):
    # The UI answers only to loopback names: the test client's default host (``testserver``) would be refused.
    with TestClient(create_ui_app(UiSettings(runs_dir=runs_dir, max_tokens=4)), base_url="http://127.0.0.1") as client:
        yield client


def csrf_headers(client) -> dict:
    client.get("/")  # the first page sets the session's CSRF cookie
    return {"X-CSRF-Token": client.cookies["tunesmith_csrf"]}


def test_unknown_runs_are_404_pages_or_json_and_names_show_as_text(client):
    page = client.get("/runs/<script>alert(1)</script>")
    assert page.status_code == 404 and "text/html" in page.headers["content-type"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text and "<script>alert" not in page.text
    missing = client.get("/api/curves/nope")
    assert missing.status_code == 404 and "no run called 'nope'" in missing.json()["error"]
    assert "Traceback" not in page.text


@pytest.mark.parametrize("path", ["/runs/../spam-done", "/runs/spam-done/../../etc/passwd", "/runs/%2e%2e/x",
                                  "/runs/spam-done/checkpoints", "/api/curves/..%2Fspam-done"])
def test_names_never_reach_outside_the_runs_folder(client, path):
    assert client.get(path).status_code == 404


def test_run_files_are_served_as_they_are(client, runs_dir):
    report = client.get("/runs/spam-done/report.html")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert report.text == (runs_dir / "spam-done" / "report.html").read_text()
    assert client.get("/runs/spam-done/eval.json").json()["tuned"]["accuracy"] == 0.875
    assert client.get("/runs/spam-stopped/report.html").status_code == 404  # not reported yet
    assert client.get("/runs/sms-sweep-1/trials/trial-0001/config.yaml").status_code == 200


def test_compare_needs_two_known_runs(client):
    assert client.get("/compare?runs=spam-done").status_code == 400
    assert client.get("/compare?runs=spam-done,nope").status_code == 404
    assert client.get("/compare?runs=spam-done,spam-stopped").status_code == 200


def test_the_runs_table_and_its_json_carry_each_runs_verdict(client):
    rows = {row["name"]: row for row in client.get("/api/runs").json()}
    assert rows["spam-done"]["verdict"]["level"] == "good"  # beats its base, no baselines, not gated
    assert rows["spam-done"]["verdict"]["headline"] == "beats base +0.3750"
    assert rows["spam-stopped"]["verdict"] == {"level": "unknown", "headline": "not evaluated",
                                               "sentences": ["Not evaluated yet."]}
    assert rows["spam-done"]["model_name"] == rows["spam-done"]["model"].rsplit("/", 1)[1]  # a local folder's name
    page = client.get("/").text
    assert 'data-verdict="good"' in page and "<th>verdict</th>" in page
    assert "alpha=8</span>" in page and "alpha=8.0" not in page  # 8.0 in config.yaml, written as a person would


def test_compare_ranks_nothing_when_it_cannot_tell_the_runs_test_rows(client):
    # The fixture's predictions.jsonl has no prompts (and eval.json no test_set): the rows are unknown, not "the same".
    page = client.get("/compare?runs=spam-done,spam-lr-high").text
    assert "Whether these runs were scored on the same 8 test rows cannot be checked" in page
    assert 'data-comparable="false"' in page and "compare-ranking" not in page
    assert page.count("8 rows (which rows: unknown)") == 2


def test_a_damaged_run_file_is_a_message_not_a_crash(client, runs_dir):
    broken = runs_dir / "spam-stopped" / "data_summary.json"
    broken.write_text("{not json")
    try:
        assert client.get("/").status_code == 200
        page = client.get("/runs/spam-stopped")
        assert page.status_code == 200 and "data_summary.json is not valid JSON" in page.text
    finally:
        broken.unlink()


def test_review_api_answers_with_the_store_statuses(client):
    headers = csrf_headers(client)
    page = client.get("/review/spam-done/bob")
    item_id = int(page.text.split('data-item="')[1].split('"')[0])
    judgment = {"run": "spam-done", "reviewer": "bob", "item_id": item_id, "verdict": "both_bad",
                "scores_a": {"correct": 2}, "scores_b": {"fluent": 5}}
    assert client.post("/api/review/judge", json=judgment).status_code == 403  # no CSRF header
    first = client.post("/api/review/judge", json=judgment, headers=headers)
    assert first.status_code == 200 and first.json()["judged"] >= 1
    assert client.post("/api/review/judge", json=judgment, headers=headers).status_code == 409
    assert client.post("/api/review/judge", json={**judgment, "scores_a": {"speed": 3}},
                       headers=headers).status_code == 400
    assert client.post("/api/review/judge", json={**judgment, "run": "spam-lr-high"},
                       headers=headers).status_code == 404  # that run has no review
    assert client.post("/api/review/undo", json={"run": "spam-done", "reviewer": "bob"},
                       headers=headers).json()["undone"] == item_id
    assert client.get("/review/spam-done/zed").status_code == 404
    assert client.get("/review/spam-done/judge:stub").status_code == 404  # a judge model is no reviewer here
    assert client.post("/api/review/judge", json={**judgment, "reviewer": "judge:stub"},
                       headers=headers).status_code == 404
    assert client.get("/review/nope/ann").status_code == 404
    reviewers = client.get("/review/spam-done")
    assert reviewers.status_code == 200 and "/review/spam-done/ann" in reviewers.text


def test_the_review_results_are_on_the_run_page_and_never_on_the_review_pages(client):
    run_page = client.get("/runs/spam-done").text
    assert 'id="human-review"' in run_page and "win rate [95% CI]" in run_page and "judgments by people" in run_page
    for path in ("/review/spam-done", "/review/spam-done/ann", "/review/spam-done/bob"):
        assert "win rate" not in client.get(path).text
    assert 'id="human-review"' not in client.get("/runs/spam-lr-high").text  # no review there


def events_of(response) -> list[dict]:
    return [json.loads(line.removeprefix("data: ")) for line in response.iter_lines() if line.startswith("data: ")]


def test_playground_streams_tokens_then_the_end(client):
    headers = csrf_headers(client)
    info = client.post("/api/playground/load", json={"run": "spam-done"}, headers=headers).json()
    assert info["tuned"] == "spam-done" and info["base"] == "base" and info["system_prompt"] == "You sort messages."
    request = {"run": "spam-done", "side": "base", "messages": [{"role": "user", "content": "hello"}],
               "system": "Be brief.", "max_tokens": 50}
    with client.stream("POST", "/api/playground/chat", json=request, headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = events_of(response)
    assert events[-1]["done"] in ("length", "stop") and 1 <= events[-1]["tokens"] <= 4  # capped by --max-tokens 4
    assert all("text" in event for event in events[:-1]) and "".join(e["text"] for e in events[:-1])
    bad = client.post("/api/playground/chat", json={**request, "template": "{{ messages[0]['nope'].x() }}"},
                      headers=headers)
    assert bad.status_code == 400 and "chat template" in bad.json()["error"]
    assert client.post("/api/playground/chat", json={**request, "run": "nope"}, headers=headers).status_code == 404
    empty = client.post("/api/playground/chat", json={**request, "messages": []}, headers=headers)
    assert empty.status_code == 422 and empty.json()["error"].startswith("messages: ")


def test_an_edited_template_renders_the_request(client):
    headers = csrf_headers(client)
    request = {"run": "spam-done", "side": "tuned", "messages": [{"role": "user", "content": "hi"}],
               "template": "{% for m in messages %}{{ m['content'] }}{% endfor %}", "max_tokens": 2}
    with client.stream("POST", "/api/playground/chat", json=request, headers=headers) as response:
        assert response.status_code == 200 and events_of(response)[-1]["tokens"] >= 1


def test_a_full_fine_tune_chats_beside_its_base_loaded_apart(client, chatty_dir):
    headers = csrf_headers(client)
    info = client.post("/api/playground/load", json={"run": "spam-full"}, headers=headers).json()
    assert info["tuned"] == "spam-full" and info["base"] == chatty_dir.name
    request = {"run": "spam-full", "side": "base", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 3}
    with client.stream("POST", "/api/playground/chat", json=request, headers=headers) as response:
        assert events_of(response)[-1]["tokens"] >= 1
