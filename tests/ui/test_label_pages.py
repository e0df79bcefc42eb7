"""The labeling pages: their JSON API through Starlette's test client (statuses, errors, names that cannot leave a
run's labeling/ folder), and the page driven in a real headless Chromium (keyboard, skip and undo, a reload
resumes, two annotators in two browsers with their agreement, a generation answer typed in the box, hostile
text shown as text). The queues are made with the store (`label_run`), not the selection code."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tunesmith.label import LabelQueue, QueueMeta
from tunesmith.ui import UiSettings, create_ui_app

LOOPBACK = "http://127.0.0.1"


@pytest.fixture()
def client(label_run):
    with TestClient(create_ui_app(UiSettings(runs_dir=label_run.parent)), base_url=LOOPBACK) as client:
        client.get("/")  # the first page sets the session's CSRF cookie
        client.headers["X-CSRF-Token"] = client.cookies["tunesmith_csrf"]
        yield client


def where(annotator: str = "ann", queue: str = "queue") -> dict:
    return {"run": "sms", "queue": queue, "annotator": annotator}


def next_of(client, annotator: str = "ann", queue: str = "queue") -> dict:
    response = client.get("/api/label/next", params=where(annotator, queue))
    assert response.status_code == 200, response.text
    return response.json()


def test_the_run_page_links_its_queues_and_each_queue_has_a_page(client, label_run, label_hostile):
    assert 'href="/label/sms"' in client.get("/runs/sms").text
    listing = client.get("/label/sms")
    assert listing.status_code == 200
    assert 'href="/label/sms/queue"' in listing.text and 'href="/label/sms/answers"' in listing.text
    page = client.get("/label/sms/queue")
    assert page.status_code == 200
    assert '<kbd>1</kbd> ham' in page.text and '<kbd>2</kbd> spam' in page.text and "teacher-7b" in page.text
    assert label_hostile not in page.text  # items reach the page as JSON, put in with textContent
    assert 'id="answer"' in client.get("/label/sms/answers").text  # generation: a text box, no label keys
    (label_run.parent / "bare").mkdir()
    (label_run.parent / "bare" / "config.yaml").write_text("model:\n  name: tiny\n")
    assert 'href="/label/bare"' not in client.get("/runs/bare").text
    assert 'id="no-queues"' in client.get("/label/bare").text


def test_annotate_skip_and_undo_through_the_api(client, label_run):
    first = next_of(client)
    assert (first["done"], first["total"], first["item"]["position"]) == (0, 5, 1)
    assert first["item"]["teacher_suggestion"] == "spam" and first["item"]["reason"].startswith("least confident")
    labeled = client.post("/api/label/annotate", json={**where(), "item_id": 1, "value": "spam"})
    assert labeled.status_code == 200 and labeled.json()["item"]["id"] == 2 and labeled.json()["done"] == 1
    skipped = client.post("/api/label/skip", json={**where(), "item_id": 2})
    assert skipped.json()["item"]["id"] == 3 and skipped.json()["annotation"]["skipped"] is True
    assert next_of(client, "bob")["item"]["id"] == 1  # everyone has a position of their own
    undone = client.post("/api/label/undo", json=where())
    assert undone.status_code == 200 and undone.json()["undone"]["item_id"] == 2
    assert undone.json()["item"]["id"] == 2  # the undone item comes back
    assert client.post("/api/label/undo", json=where()).json()["item"]["id"] == 1
    nothing = client.post("/api/label/undo", json=where())
    assert nothing.status_code == 409 and "nothing to undo" in nothing.json()["error"]
    answer = client.post("/api/label/annotate", json={**where(queue="answers"), "item_id": 1, "value": "4\nfour"})
    assert answer.status_code == 200
    with LabelQueue.open(label_run / "labeling" / "answers.db") as queue:
        assert [(a.annotator, a.value) for a in queue.annotations()] == [("ann", "4\nfour")]
    with LabelQueue.open(label_run / "labeling" / "queue.db") as queue:
        assert queue.annotations() == []


def test_bad_requests_are_clear_4xx_json_and_change_nothing(client, label_run):
    post = client.post
    item = {**where(), "item_id": 1}
    assert post("/api/label/annotate", json={**item, "value": "spam"}).status_code == 200
    cases = [
        (post("/api/label/annotate", json={**item, "value": "ham"}), 409, "already"),
        (post("/api/label/annotate", json={**item, "annotator": "bob", "value": "eggs"}), 400, "not one of"),
        (post("/api/label/annotate", json={**item, "annotator": "bob", "value": "  "}), 400, "needs a value"),
        (post("/api/label/annotate", json={**item, "item_id": 99, "value": "ham"}), 404, "no item 99"),
        (post("/api/label/annotate", json={**item, "annotator": "", "value": "ham"}), 400, "needs a name"),
        (post("/api/label/annotate", json={**item, "annotator": "a\nb", "value": "ham"}), 400, "control"),
        (post("/api/label/annotate", json={**item, "annotator": "x" * 65, "value": "ham"}), 400, "at most"),
        (post("/api/label/annotate", json={**item, "item_id": "one", "value": "ham"}), 422, "item_id"),
        (post("/api/label/annotate", json={**item, "value": "x" * 20_001}), 422, "value"),
        (post("/api/label/annotate", content=b"{not json", headers={"Content-Type": "application/json"}), 422, "not valid JSON"),
        (post("/api/label/skip", json={**item, "run": "nope"}), 404, "no run called 'nope'"),
        (post("/api/label/skip", json={**item, "queue": "nope"}), 404, "no labeling queue 'nope'"),
        (client.get("/api/label/next", params=where(annotator="")), 400, "needs a name"),
        (client.get("/api/label/next", params={"run": "sms"}), 422, "queue"),
        (post("/api/label/undo", json=where(), headers={"X-CSRF-Token": "forged"}), 403, "CSRF"),
    ]
    for response, status, words in cases:
        assert response.status_code == status, (status, response.text)
        assert words in response.json()["error"] and "Traceback" not in response.text
    with LabelQueue.open(label_run / "labeling" / "queue.db") as queue:
        assert [(a.annotator, a.item_id, a.value) for a in queue.annotations()] == [("ann", 1, "spam")]
    assert client.get("/label/sms/nope").status_code == 404
    assert client.get("/label/nope").status_code == 404 and client.get("/label/nope/queue").status_code == 404


@pytest.mark.parametrize("queue", ["../secret", "../../outside", "..%2Fsecret", "/tmp/x", "queue.db", "queue/",
                                   "labeling/queue", ".", "..", ""])
def test_a_queue_name_never_reaches_outside_the_labeling_folder(client, label_run, queue):
    # Real queues lie beside the folder and above the run: a name that reached them would answer 200.
    meta = QueueMeta(run="sms", log_dir="logs", task="classification", labels=["ham", "spam"],
                     format="classification", strategy="mixed", budget=1, created="now", teacher_model=None)
    item = [{"request_id": "r", "input": "secret input", "reason": "novel"}]
    for path in (label_run / "secret.db", label_run.parent / "outside.db"):
        if not path.exists():
            LabelQueue.create(path, meta, item).close()
    response = client.get("/api/label/next", params=where(queue=queue))
    assert response.status_code == 404 and "secret input" not in response.text
    assert client.get(f"/label/sms/{queue}").status_code in (200, 404)  # "/label/sms/" is the run's queue list
    assert "secret input" not in client.get(f"/label/sms/{queue}").text
    assert client.post("/api/label/annotate", json={**where(queue=queue), "item_id": 1,
                                                     "value": "ham"}).status_code == 404
