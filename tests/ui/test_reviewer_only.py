"""Reviewer-only mode (`tunesmith.ui.reviewer_only`) without a browser: the review pages and their API answer,
everything that would show a model's name, answers or results is 403, and ``/`` goes to the reviews."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tunesmith.ui import UiSettings, create_ui_app
from tunesmith.ui.reviewer_only import is_open


@pytest.fixture(scope="module")
def client(runs_dir, live_lock):
    settings = UiSettings(runs_dir=runs_dir, reviewer_only=True)
    with TestClient(create_ui_app(settings), base_url="http://127.0.0.1", follow_redirects=False) as client:
        yield client


@pytest.mark.parametrize("path", ["/runs/spam-done", "/runs/spam-done/predictions.jsonl", "/runs/spam-done/eval.json",
                                  "/compare?runs=spam-done,spam-lr-high", "/playground", "/api/runs",
                                  "/api/curves/spam-done", "/label/spam-done", "/reviewers", "/api/review"])
def test_everything_but_the_review_is_closed(client, path):
    answer = client.get(path)
    assert answer.status_code == 403
    assert "reviewer-only mode" in answer.text and "0.875" not in answer.text


def test_the_review_is_open_and_home_is_the_reviews(client):
    home = client.get("/")
    assert home.status_code == 303 and home.headers["location"] == "/review/"
    reviews = client.get("/review/")
    assert reviews.status_code == 200 and 'href="/review/spam-done"' in reviews.text
    assert 'href="/"' not in reviews.text and "/playground" not in reviews.text  # the nav leads to the reviews
    page = client.get("/review/spam-done")
    assert page.status_code == 200 and "/runs/" not in page.text
    headers = {"X-CSRF-Token": client.cookies["tunesmith_csrf"]}
    undo = client.post("/api/review/undo", json={"run": "spam-done", "reviewer": "zed"}, headers=headers)
    assert undo.status_code == 404 and "unknown reviewer" in undo.json()["error"]  # the route answered


def test_open_paths():
    assert is_open("/review") and is_open("/review/a/b") and is_open("/static/review.js")
    assert is_open("/api/review/judge") and not is_open("/api/review/export") and not is_open("/reviewer")
