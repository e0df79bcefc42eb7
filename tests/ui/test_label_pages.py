"""The labeling pages: their JSON API through Starlette's test client (statuses, errors, names that cannot leave a
run's labeling/ folder), and the page driven in a real headless Chromium (keyboard, skip and undo, a reload
resumes, two annotators in two browsers with their agreement, a generation answer typed in the box, hostile
text shown as text). The queues are made with the store (`queues_run`), not the selection code."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tunesmith.label import LabelQueue, QueueMeta
from tunesmith.ui import UiSettings, create_ui_app

LOOPBACK = "http://127.0.0.1"


@pytest.fixture()
def client(queues_run):
    with TestClient(create_ui_app(UiSettings(runs_dir=queues_run.parent)), base_url=LOOPBACK) as client:
        client.get("/")  # the first page sets the session's CSRF cookie
        client.headers["X-CSRF-Token"] = client.cookies["tunesmith_csrf"]
        yield client


def where(annotator: str = "ann", queue: str = "queue") -> dict:
    return {"run": "sms", "queue": queue, "annotator": annotator}


def next_of(client, annotator: str = "ann", queue: str = "queue") -> dict:
    response = client.get("/api/label/next", params=where(annotator, queue))
    assert response.status_code == 200, response.text
    return response.json()


def test_the_run_page_links_its_queues_and_each_queue_has_a_page(client, queues_run, label_hostile):
    assert 'href="/label/sms"' in client.get("/runs/sms").text
    listing = client.get("/label/sms")
    assert listing.status_code == 200
    assert 'href="/label/sms/queue"' in listing.text and 'href="/label/sms/answers"' in listing.text
    assert '<td class="num">5</td>' in listing.text and '<td class="num">3</td>' in listing.text  # items
    page = client.get("/label/sms/queue")
    assert page.status_code == 200
    assert '<kbd>1</kbd> ham' in page.text and '<kbd>2</kbd> spam' in page.text and "teacher-7b" in page.text
    assert label_hostile not in page.text  # items reach the page as JSON, put in with textContent
    assert 'id="answer"' in client.get("/label/sms/answers").text  # generation: a text box, no label keys
    (queues_run / "labeling" / "damaged.db").write_bytes(b"not a database")
    listing = client.get("/label/sms")
    assert listing.status_code == 200 and "damaged.db is not a labeling queue" in listing.text
    assert 'href="/label/sms/queue"' in listing.text  # the other queues still show
    damaged = client.get("/api/label/next", params=where(queue="damaged"))
    assert damaged.status_code == 400 and "is not a labeling queue" in damaged.json()["error"]
    (queues_run.parent / "bare").mkdir()
    (queues_run.parent / "bare" / "config.yaml").write_text("model:\n  name: tiny\n")
    assert 'href="/label/bare"' not in client.get("/runs/bare").text
    assert 'id="no-queues"' in client.get("/label/bare").text


def test_annotate_skip_and_undo_through_the_api(client, queues_run):
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
    with LabelQueue.open(queues_run / "labeling" / "answers.db") as queue:
        assert [(a.annotator, a.value) for a in queue.annotations()] == [("ann", "4\nfour")]
    with LabelQueue.open(queues_run / "labeling" / "queue.db") as queue:
        assert queue.annotations() == []


def test_bad_requests_are_clear_4xx_json_and_change_nothing(client, queues_run):
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
        (post("/api/label/annotate", content=b"{not json", headers={"Content-Type": "application/json"}), 422,
         "not valid JSON"),
        (post("/api/label/skip", json={**item, "run": "nope"}), 404, "no run called 'nope'"),
        (post("/api/label/skip", json={**item, "queue": "nope"}), 404, "no labeling queue 'nope'"),
        (client.get("/api/label/next", params=where(annotator="")), 400, "needs a name"),
        (client.get("/api/label/next", params={"run": "sms"}), 422, "queue"),
        (post("/api/label/undo", json=where(), headers={"X-CSRF-Token": "forged"}), 403, "CSRF"),
    ]
    for response, status, words in cases:
        assert response.status_code == status, (status, response.text)
        assert words in response.json()["error"] and "Traceback" not in response.text
    with LabelQueue.open(queues_run / "labeling" / "queue.db") as queue:
        assert [(a.annotator, a.item_id, a.value) for a in queue.annotations()] == [("ann", 1, "spam")]
    assert client.get("/label/sms/nope").status_code == 404
    assert client.get("/label/nope").status_code == 404 and client.get("/label/nope/queue").status_code == 404


def test_stats_count_each_annotator_and_their_agreement_with_n(client):
    empty = client.get("/api/label/stats", params={"run": "sms", "queue": "queue"}).json()
    assert empty["annotators"] == {} and empty["items"] == 5 and empty["agreement"]["items"] == 0
    for annotator, values in (("ann", ["spam", "spam", "ham"]), ("bob", ["spam", "ham", "ham"])):
        for item_id, value in enumerate(values, start=1):
            assert client.post("/api/label/annotate", json={**where(annotator), "item_id": item_id,
                                                            "value": value}).status_code == 200
    client.post("/api/label/skip", json={**where("bob"), "item_id": 4})
    stats = client.get("/api/label/stats", params={"run": "sms", "queue": "queue"}).json()
    assert stats["annotators"] == {"ann": {"labeled": 3, "skipped": 0}, "bob": {"labeled": 3, "skipped": 1}}
    agreement = stats["agreement"]
    assert (agreement["method"], agreement["items"], agreement["observed"]) == ("cohen", 3, 2 / 3)
    assert agreement["kappa"] == pytest.approx(0.4) and len(agreement["observed_interval"]) == 2
    # The teacher suggested spam, markup, spam for items 1-3: ann agrees on 1 of 3, bob on 1 of 3.
    teacher = stats["teacher"]
    assert (teacher["model"], teacher["suggestions"], teacher["errors"]) == ("teacher-7b", 3, 1)
    assert {name: pair["items"] for name, pair in teacher["agreement"].items()} == {"ann": 3, "bob": 3}
    assert client.get("/api/label/stats", params={"run": "sms", "queue": "../queue"}).status_code == 404
    assert "ann 3 / 5" in client.get("/label/sms").text and "bob 4 / 5" in client.get("/label/sms").text


@pytest.mark.parametrize("queue", ["../secret", "../../outside", "..%2Fsecret", "/tmp/x", "queue.db", "queue/",
                                   "labeling/queue", ".", "..", ""])
def test_a_queue_name_never_reaches_outside_the_labeling_folder(client, queues_run, queue):
    # Real queues lie beside the folder and above the run: a name that reached them would answer 200.
    meta = QueueMeta(run="sms", log_dir="logs", task="classification", labels=["ham", "spam"],
                     format="classification", strategy="mixed", budget=1, created="now", teacher_model=None)
    item = [{"request_id": "r", "input": "secret input", "reason": "novel"}]
    for path in (queues_run / "secret.db", queues_run.parent / "outside.db"):
        if not path.exists():
            LabelQueue.create(path, meta, item).close()
    response = client.get("/api/label/next", params=where(queue=queue))
    assert response.status_code == 404 and "secret input" not in response.text
    assert client.get(f"/label/sms/{queue}").status_code in (200, 404)  # "/label/sms/" is the run's queue list
    assert "secret input" not in client.get(f"/label/sms/{queue}").text
    assert client.post("/api/label/annotate", json={**where(queue=queue), "item_id": 1,
                                                     "value": "ham"}).status_code == 404


# ---- in a real headless Chromium -----------------------------------------------------------------------------------

WAIT_S = 20


def page_state(browser) -> dict:
    """The labeling page's data attributes (item, done, ready, ...); {} while a page loads."""
    return browser.execute_script("const root = document.getElementById('label');"
                                  "return root ? {...root.dataset} : {};")


def until(browser, condition, what: str):
    from selenium.common.exceptions import JavascriptException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT_S, poll_frequency=0.1, ignored_exceptions=(JavascriptException,)).until(
        lambda driver: condition(page_state(driver)), message=f"waited for {what}")


def at_item(browser, item_id: int | str) -> None:
    """Wait for item ``item_id`` ("" for the done page) with the page's keys listening."""
    until(browser, lambda state: state.get("ready") == "true" and state.get("item") == str(item_id),
          f"item {item_id!r}")


def press(browser, *keys) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    ActionChains(browser).send_keys(*keys).perform()


def text_of(browser, selector: str) -> str:
    return browser.execute_script("return document.querySelector(arguments[0]).textContent", selector)


def sign_in(browser, url: str, name: str, queue: str = "queue") -> None:
    browser.get(f"{url}/label/sms/{queue}")
    browser.find_element("css selector", "#annotator-name").send_keys(name + "\n")


def annotations_of(queues_run, queue: str = "queue") -> list[tuple]:
    with LabelQueue.open(queues_run / "labeling" / f"{queue}.db") as store:
        return [(a.annotator, a.item_id, a.value, a.skipped) for a in store.annotations()]


@pytest.fixture()
def ui(serve_ui, queues_run) -> str:
    return serve_ui(UiSettings(runs_dir=queues_run.parent))


def test_keys_label_skip_and_undo_and_a_reload_resumes(browser, ui, queues_run, label_hostile):
    sign_in(browser, ui, "ann")
    at_item(browser, 1)
    # Item 1's input is markup: it shows as written, and nothing in it runs or renders.
    assert text_of(browser, "#input") == label_hostile
    assert browser.execute_script("return window.__xss === undefined && !document.querySelector('main img, main b')")
    assert text_of(browser, "#prediction") == "ham" and text_of(browser, "#confidence") == "0.510"
    assert text_of(browser, "#novelty") == "0.100" and text_of(browser, "#reason") == "least confident: 0.51"
    assert text_of(browser, "#teacher-suggestion") == "spam" and "teacher-7b" in text_of(browser, "#teacher")
    assert text_of(browser, "#progress-text") == "0 of 5 done"
    press(browser, "2")
    at_item(browser, 2)
    assert text_of(browser, "#teacher-suggestion") == label_hostile  # a teacher's reply is text too
    assert browser.execute_script("return window.__xss === undefined")
    press(browser, "s")
    at_item(browser, 3)
    press(browser, "9", "x")  # no ninth label, no such shortcut: nothing happens
    press(browser, "1")
    at_item(browser, 4)
    assert browser.execute_script("return document.getElementById('teacher').hidden")
    assert "timed out after 30 s" in text_of(browser, "#teacher-error")
    press(browser, "u")
    at_item(browser, 3)  # the undone item comes back
    browser.refresh()
    at_item(browser, 3)  # the name is remembered, the place is the server's
    assert text_of(browser, "#annotator") == "ann" and text_of(browser, "#progress-text") == "2 of 5 done"
    assert annotations_of(queues_run) == [("ann", 1, "spam", False), ("ann", 2, None, True)]
    browser.find_element("css selector", 'button[data-value="ham"]').click()
    at_item(browser, 4)
    for item in (4, 5):
        press(browser, "1")
        at_item(browser, item + 1 if item < 5 else "")
    assert browser.execute_script("return !document.getElementById('done').hidden")
    assert [value for _, _, value, _ in annotations_of(queues_run)] == ["spam", None, "ham", "ham", "ham"]


def test_two_annotators_in_two_browsers_keep_their_own_places(browser, start_browser, ui, queues_run):
    other = start_browser()
    sign_in(browser, ui, "ann")
    sign_in(other, ui, "bob")
    at_item(browser, 1)
    at_item(other, 1)
    for key, following in (("2", 2), ("2", 3), ("1", 4)):
        press(browser, key)
        at_item(browser, following)
    other.refresh()
    at_item(other, 1)  # ann's work does not move bob
    for key, following in (("2", 2), ("1", 3), ("1", 4)):
        press(other, key)
        at_item(other, following)
    browser.refresh()
    at_item(browser, 4)
    # ann: spam spam ham; bob: spam ham ham. They agree on 2 of 3 items, kappa 0.40 (Cohen).
    until(browser, lambda state: state.get("statsVersion"), "the stats")
    assert text_of(browser, "#agreement").startswith("kappa 0.40 (cohen) · 67% agree (95% CI ")
    assert text_of(browser, "#agreement").endswith(" · n = 3")
    counts = {row.get_attribute("data-annotator"): row.text
              for row in browser.find_elements("css selector", "#annotator-counts tbody tr")}
    assert set(counts) == {"ann", "bob"} and counts["ann"].startswith("ann 3 0 ")
    assert "n = 3" in counts["bob"]  # with the teacher, on the 3 items it suggested for and bob labeled
    assert "suggested 3 of 5 items" in text_of(browser, "#teacher-stats")
    # bob labels item 4 elsewhere (another tab) while this page still shows it: the page says so and moves on.
    with LabelQueue.open(queues_run / "labeling" / "queue.db") as store:
        store.annotate(4, "bob", "ham")
    press(other, "2")
    at_item(other, 5)
    assert "bob has annotated item 4 already" in text_of(other, "#label-error")
    annotations = annotations_of(queues_run)
    assert annotations.pop() == ("bob", 4, "ham", False)
    assert annotations == [("ann", 1, "spam", False), ("ann", 2, "spam", False),
                                         ("ann", 3, "ham", False), ("bob", 1, "spam", False),
                                         ("bob", 2, "ham", False), ("bob", 3, "ham", False)]


def test_a_generation_answer_is_typed_in_the_box_where_keys_are_text(browser, ui, queues_run):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    sign_in(browser, ui, "cy", queue="answers")
    at_item(browser, 1)
    assert "system: Be brief." in text_of(browser, "#messages")  # the whole conversation, on request
    assert text_of(browser, "#prediction") == "model answer 1"
    press(browser, "s u 1")  # the box has the focus: these are text, not shortcuts
    ActionChains(browser).key_down(Keys.SHIFT).send_keys(Keys.ENTER).key_up(Keys.SHIFT).perform()
    press(browser, "second line", Keys.ENTER)
    at_item(browser, 2)
    assert annotations_of(queues_run, "answers") == [("cy", 1, "s u 1\nsecond line", False)]
    press(browser, Keys.ENTER)  # an empty answer is not sent
    browser.execute_script("document.activeElement.blur()")
    press(browser, "u")
    at_item(browser, 1)
    # The undone answer comes back into the box, to be corrected.
    assert browser.execute_script("return document.getElementById('answer').value") == "s u 1\nsecond line"
    press(browser, Keys.BACKSPACE * 4, Keys.ENTER)
    at_item(browser, 2)
    press(browser, "s")
    at_item(browser, 2)  # in the box, s is a letter
    browser.execute_script("document.activeElement.blur()")
    press(browser, "s")
    at_item(browser, 3)
    assert annotations_of(queues_run, "answers") == [("cy", 1, "s u 1\nsecond ", False), ("cy", 2, None, True)]
