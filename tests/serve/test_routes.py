"""`/v1/feedback` checked against the model that answered: a label must be one of its labels, a label for a
generation model is refused, the record names the model, and ids answered by an earlier server on the same log
are known to the next one."""

from __future__ import annotations

import httpx

from tunesmith.monitor.request_log import read_log
from tunesmith.serve.served import load_served


def feedback_records(folder) -> list[dict]:
    return [record for record in read_log(folder) if record["kind"] == "feedback"]


def test_a_label_must_be_one_of_the_answering_models_labels(start_server, spam_runs, tmp_path):
    a, b = spam_runs
    url, _ = start_server(lambda: load_served([str(a), str(b)]))
    answer = httpx.post(f"{url}/v1/classify", json={"model": b.name, "text": "free prize"}).json()
    refused = httpx.post(f"{url}/v1/feedback", json={"id": answer["id"], "label": "eggs"})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert "ham, spam" in error["message"] and error["param"] == "label" and error["code"] == "unknown_label"
    assert feedback_records(tmp_path / "logs") == []
    stored = httpx.post(f"{url}/v1/feedback", json={"id": answer["id"], "label": "spam", "rating": "down"})
    assert stored.status_code == 200 and stored.json()["model"] == b.name
    (record,) = feedback_records(tmp_path / "logs")
    assert (record["id"], record["model"], record["label"], record["rating"]) == (answer["id"], b.name, "spam",
                                                                                  "down")
    # A refused feedback is a refused request: a line of the log without a model.
    (refusal,) = [r for r in read_log(tmp_path / "logs") if r["kind"] == "request" and r["status"] == 400]
    assert refusal["route"] == "/v1/feedback" and refusal["model"] is None and "eggs" in refusal["error"]


def test_a_label_for_a_generation_model_is_refused(start_server, chatty_model_dir, tmp_path):
    url, _ = start_server(lambda: load_served([str(chatty_model_dir)]))
    reply = httpx.post(f"{url}/v1/chat/completions",
                       json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}).json()
    refused = httpx.post(f"{url}/v1/feedback", json={"id": reply["id"], "label": "spam"})
    assert refused.status_code == 400 and "generation model" in refused.json()["error"]["message"]
    assert httpx.post(f"{url}/v1/feedback", json={"id": reply["id"], "correction": "Hello!"}).status_code == 200
    (record,) = feedback_records(tmp_path / "logs")
    assert record["model"] == chatty_model_dir.name and record["correction"] == "Hello!"


def test_the_next_server_on_the_log_knows_which_model_answered(start_server, spam_runs, tmp_path):
    a, b = spam_runs
    first, _ = start_server(lambda: load_served([str(a), str(b)]))
    answer = httpx.post(f"{first}/v1/classify", json={"model": b.name, "text": "lunch?"}).json()
    second, state = start_server(lambda: load_served([str(a), str(b)]))  # the same log folder
    assert state.known_ids[answer["id"]] == (b.name, str(b.resolve()))
    assert httpx.post(f"{second}/v1/feedback", json={"id": answer["id"], "label": "nope"}).status_code == 400
    assert httpx.post(f"{second}/v1/feedback", json={"id": answer["id"], "label": "ham"}).json()["model"] == b.name
    # An answer of a model the next server does not serve: its labels are unknown, so a label is refused.
    only_a, _ = start_server(lambda: load_served([str(a)]), log_dir=tmp_path / "logs")
    refused = httpx.post(f"{only_a}/v1/feedback", json={"id": answer["id"], "label": "ham"})
    assert refused.status_code == 400 and b.name in refused.json()["error"]["message"]
    assert httpx.post(f"{only_a}/v1/feedback", json={"id": answer["id"], "rating": "up"}).status_code == 200
