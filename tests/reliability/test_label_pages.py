"""Faults at the labeling pages' API (`tunesmith.ui.label_pages`): concurrent posts of one item (by one annotator and
by several), hostile annotator names, bad values and huge or malformed bodies. Each gets one clear 4xx or its one
answer, and no request ever changes another annotator's work. Served by uvicorn in a thread, so requests really
run at once (the routes are plain functions on FastAPI's worker threads)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tunesmith.label import LabelQueue
from tunesmith.ui import UiSettings, create_ui_app

QUEUE = {"run": "sms", "queue": "queue"}


@pytest.fixture()
def ui(serving, queues_run):
    with serving(create_ui_app(UiSettings(runs_dir=queues_run.parent)), "/api/runs") as url:
        yield url


def session(url: str) -> httpx.Client:
    """A client with the UI's session cookie and its CSRF header, as a page's script has them."""
    client = httpx.Client(base_url=url, timeout=60)
    client.get("/")
    client.headers["X-CSRF-Token"] = client.cookies["tunesmith_csrf"]
    return client


def work_of(queues_run) -> list[tuple]:
    with LabelQueue.open(queues_run / "labeling" / "queue.db") as store:
        return [(a.annotator, a.item_id, a.value, a.skipped) for a in store.annotations()]


def test_concurrent_posts_of_one_item_store_one_annotation_per_annotator(ui, queues_run):
    clients = [session(ui) for _ in range(4)]  # four browsers
    posts = [(clients[n % 4], annotator, value) for n in range(24)
             for annotator, value in [("ann", "spam"), ("bob", "ham"), ("cy", "spam")][n % 3:n % 3 + 1]]
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda post: post[0].post("/api/label/annotate", json={
            **QUEUE, "annotator": post[1], "item_id": 1, "value": post[2]}), posts))
    statuses = [answer.status_code for answer in answers]
    assert statuses.count(200) == 3 and statuses.count(409) == len(posts) - 3, statuses
    assert all("already" in answer.json()["error"] for answer in answers if answer.status_code == 409)
    assert sorted(work_of(queues_run)) == [("ann", 1, "spam", False), ("bob", 1, "ham", False),
                                          ("cy", 1, "spam", False)]


def test_undo_and_skip_at_once_never_touch_another_annotators_work(ui, queues_run):
    ann, bob = session(ui), session(ui)
    for item, value in ((1, "spam"), (2, "ham"), (3, "spam")):
        assert bob.post("/api/label/annotate", json={**QUEUE, "annotator": "bob", "item_id": item,
                                                     "value": value}).status_code == 200

    def ann_works(n: int) -> int:
        if n % 2:
            return ann.post("/api/label/undo", json={**QUEUE, "annotator": "ann"}).status_code
        return ann.post("/api/label/skip", json={**QUEUE, "annotator": "ann", "item_id": n // 2 % 5 + 1}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(ann_works, range(40)))
    assert set(statuses) <= {200, 409}
    assert [line for line in work_of(queues_run) if line[0] == "bob"] == [
        ("bob", 1, "spam", False), ("bob", 2, "ham", False), ("bob", 3, "spam", False)]
    assert all(skipped and value is None for name, _, value, skipped in work_of(queues_run) if name == "ann")


HOSTILE_NAMES = ["", " ", "ann ", " ann", "ann\n", "a\x00nn", "a\x1bnn", "\u202eann", "x" * 65, "x" * 100_000]
"""Names the store refuses: none may act as "ann" (a trailing space would read as her name on a page)."""


def test_hostile_annotator_names_are_refused_and_act_for_nobody(ui, queues_run):
    client = session(ui)
    assert client.post("/api/label/annotate", json={**QUEUE, "annotator": "ann", "item_id": 1,
                                                    "value": "spam"}).status_code == 200
    for name in HOSTILE_NAMES:
        for path, body in (("/api/label/undo", {}), ("/api/label/skip", {"item_id": 2}),
                           ("/api/label/annotate", {"item_id": 2, "value": "ham"})):
            answer = client.post(path, json={**QUEUE, "annotator": name, **body})
            assert answer.status_code in (400, 422), (name[:20], path, answer.text[:200])
            assert "error" in answer.json() and len(answer.text) < 2_000  # a huge name is not echoed back
        if len(name) < 1_000:  # a longer one makes no URL
            assert client.get("/api/label/next", params={**QUEUE, "annotator": name}).status_code in (400, 422)
    markup = "<script>alert(1)</script>"  # printable: a name, shown as text by the page
    assert client.post("/api/label/skip", json={**QUEUE, "annotator": markup, "item_id": 1}).status_code == 200
    assert work_of(queues_run) == [("ann", 1, "spam", False), (markup, 1, None, True)]


@pytest.mark.parametrize("value", [None, 1, 1.5, True, ["spam"], {"label": "spam"}, "", "   ", "SPAM", "spam ",
                                   "eggs", "<b>spam</b>", "spam\x00"])
def test_a_bad_value_is_a_4xx_and_stores_nothing(ui, queues_run, value):
    client = session(ui)
    answer = client.post("/api/label/annotate", json={**QUEUE, "annotator": "ann", "item_id": 1, "value": value})
    assert answer.status_code in (400, 422) and answer.json()["error"], answer.text
    assert work_of(queues_run) == []
    assert client.get("/api/label/next", params={**QUEUE, "annotator": "ann"}).json()["item"]["id"] == 1


def test_huge_and_malformed_bodies_are_refused_and_the_server_keeps_working(ui, queues_run):
    client = session(ui)
    assert client.post("/api/label/annotate", json={**QUEUE, "annotator": "bob", "item_id": 1,
                                                    "value": "ham"}).status_code == 200
    huge = "spam" * 2_000_000  # 8 MB
    bodies = [
        {"json": {**QUEUE, "annotator": "ann", "item_id": 1, "value": huge}},
        {"json": {**QUEUE, "annotator": "ann", "item_id": 1, "value": "spam", "extra": huge}},
        {"json": {**QUEUE, "run": huge, "annotator": "ann", "item_id": 1, "value": "spam"}},
        {"json": {**QUEUE, "annotator": "ann", "item_id": 10**30, "value": "spam"}},
        {"json": [QUEUE] * 1_000},
        {"content": b"[" * 100_000 + b"]" * 100_000, "headers": {"Content-Type": "application/json"}},
        {"content": b"\xff\xfe" * 1_000, "headers": {"Content-Type": "application/json"}},
    ]
    for body in bodies:
        answer = client.post("/api/label/annotate", **body)
        assert 400 <= answer.status_code < 500, answer.text[:200]
        assert len(answer.text) < 2_000 and "Traceback" not in answer.text
    assert work_of(queues_run) == [("bob", 1, "ham", False)]
    following = client.post("/api/label/annotate", json={**QUEUE, "annotator": "ann", "item_id": 1, "value": "spam"})
    assert following.status_code == 200 and following.json()["item"]["id"] == 2
