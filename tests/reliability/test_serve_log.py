"""Faults around the request log of `tunesmith serve`: a wrong or missing API key is a line of the log and no line
holds key material; concurrent classify and chat requests with novelty on are each logged once; hostile inputs to
the novelty scorer (huge, odd, or breaking the embedder) cost another client's request nothing."""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import pytest

from tunesmith.monitor.request_log import read_log
from tunesmith.run_dir import RunDir
from tunesmith.serve import load_served

KEY = "sk-tunesmith-very-secret-4242"
TRAINING = ["win a free prize now", "see you at lunch", "claim your cash reward today", "are we still meeting?"]


@pytest.fixture()
def spam_run(lora_run, write_reference):
    """The tiny LoRA run as a spam/ham classifier with a reference and a novelty index."""
    RunDir(lora_run).data_summary.write_text(json.dumps({"format": "classification", "labels": ["ham", "spam"]}))
    write_reference(lora_run, TRAINING, labels=["ham", "spam"], temperature=2.0)
    return lora_run


def test_a_refused_key_is_a_log_line_without_the_key(start_server, spam_run, tmp_path):
    url, _ = start_server(lambda: load_served([str(spam_run)]), api_key=KEY)
    wrong = [{}, {"Authorization": f"Bearer {KEY[:-1]}"}, {"Authorization": f"Bearer {KEY}x"},
             {"Authorization": KEY}, {"Authorization": "Basic " + KEY}]
    refused = []
    for headers in wrong:
        refused.append(httpx.post(f"{url}/v1/chat/completions", headers=headers,
                                  json={"messages": [{"role": "user", "content": "hi"}]}))
        refused.append(httpx.get(f"{url}/metrics", headers=headers))
        refused.append(httpx.post(f"{url}/v1/feedback", headers=headers, json={"id": "x", "label": KEY}))
    assert {response.status_code for response in refused} == {401}
    assert httpx.get(f"{url}/v1/models", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    records = [record for record in read_log(tmp_path / "logs") if record["kind"] == "request"]
    assert len(records) == len(refused)
    assert all(r["status"] == 401 and r["model"] is None and "API key" in r["error"] for r in records)
    assert sorted({r["route"] for r in records}) == ["/metrics", "/v1/chat/completions", "/v1/feedback"]
    for path in (tmp_path / "logs").iterdir():  # the whole log folder: no key, no part of one, no header sent
        text = path.read_text()
        assert KEY[:6] not in text and "4242" not in text and "Basic" not in text


def test_concurrent_classify_and_chat_with_novelty_are_each_logged_once(start_server, spam_run, trigram_embedder,
                                                                        tmp_path):
    url, _ = start_server(lambda: load_served([str(spam_run)], embedder=trigram_embedder), max_tokens=8)

    def ask(i: int) -> str:
        text = f"message {i}: " + "free prize " * (i % 4)
        if i % 2:
            return httpx.post(f"{url}/v1/classify", json={"text": text}, timeout=60).json()["id"]
        body = {"messages": [{"role": "user", "content": text}], "max_tokens": 6, "stream": i % 4 == 0}
        response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=60)
        return response.json()["id"] if not body["stream"] else json.loads(response.text.split("\n")[0][6:])["id"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(ask, range(32)))
    records = [record for record in read_log(tmp_path / "logs") if record["kind"] == "request"]
    assert sorted(record["id"] for record in records) == sorted(ids) and len(set(ids)) == 32
    assert all(r["status"] == 200 and 0 <= r["novelty"] <= 2 and 0 < r["confidence"] <= 1 for r in records)


class BrittleEmbedder:
    """`TrigramEmbedder`, except that it fails on a text holding NUL (a hostile input that breaks the model)."""

    def __init__(self, embedder):
        self.inner, self.identity = embedder, embedder.identity

    def encode(self, texts):
        if any("\x00" in text for text in texts):
            raise ValueError("the embedder cannot read this input")
        return self.inner.encode(texts)


def test_hostile_inputs_to_novelty_do_not_harm_another_clients_request(start_server, spam_run, trigram_embedder,
                                                                       tmp_path):
    embedder = BrittleEmbedder(trigram_embedder())
    url, _ = start_server(lambda: load_served([str(spam_run)], embedder=lambda name: embedder),
                          max_prompt_tokens=100_000)
    polite = [f"are we still meeting at {hour}?" for hour in range(8)]
    alone = [httpx.post(f"{url}/v1/classify", json={"text": text}).json() for text in polite]
    hostile = ["\x00" * 50 + "spam", "\u202e\u0301 odd \x00 " * 10, "🦜" * 40, "z" * 20_000]

    def send(text: str) -> httpx.Response:
        return httpx.post(f"{url}/v1/classify", json={"text": text}, timeout=60)

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(send, [text for pair in zip(polite, hostile * 2) for text in pair]))
    polite_answers = [response.json() for response in answers[0::2]]
    assert [(a["label"], a["probabilities"]) for a in polite_answers] == [
        (a["label"], pytest.approx(a["probabilities"])) for a in alone]
    records = {r["id"]: r for r in read_log(tmp_path / "logs") if r["kind"] == "request"}
    for before, after in zip(alone, polite_answers):
        assert records[after["id"]]["novelty"] == pytest.approx(records[before["id"]]["novelty"], abs=1e-5)
    for response, text in zip(answers[1::2], hostile * 2):
        if response.status_code == 200 or "\x00" in text:  # the embedder-breaking ones are short: answered
            record = records[response.json()["id"]]
            assert ("novelty_error" in record) == ("\x00" in text) and record["status"] == 200
            assert ("novelty" in record) != ("\x00" in text)
        else:  # a prompt over the server's limit is refused before any model or scorer sees it
            assert response.status_code == 400 and response.json()["error"]["code"] == "context_length_exceeded"
    assert max(len(text) for batch in embedder.inner.encoded for text in batch) <= 8192


def test_a_lone_surrogate_is_a_400_naming_the_field_and_the_log_stays_readable(start_server, spam_run, tmp_path):
    """JSON can spell a lone surrogate, UTF-8 cannot: the request models refuse it, naming the field, so it never
    reaches the tokenizer or the log."""
    url, _ = start_server(lambda: load_served([str(spam_run)]))
    surrogate = '"lone \\ud800 half"'  # the JSON escape itself: httpx would refuse to encode the character
    bodies = {"/v1/classify": f'{{"text": {surrogate}}}',
              "/v1/chat/completions": f'{{"messages": [{{"role": "user", "content": {surrogate}}}]}}',
              "/v1/completions": f'{{"prompt": {surrogate}}}'}
    for route, body in bodies.items():
        response = httpx.post(f"{url}{route}", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == 400, (route, response.text)
        error = response.json()["error"]
        assert error["param"] in ("text", "prompt", "messages.0.content") and "unicode" in error["message"].lower()
    answered = httpx.post(f"{url}/v1/classify", json={"text": "see you at lunch"})
    assert answered.status_code == 200
    records = [record for record in read_log(tmp_path / "logs") if record["kind"] == "request"]
    assert [r["status"] for r in records] == [400, 400, 400, 200]
