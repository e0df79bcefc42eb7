"""Teacher suggestions against a stub OpenAI-compatible server started in the test: known replies, unusable replies,
HTTP errors and a timeout, each recorded on its item."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tunesmith import distributed
from tunesmith.label.create import create_queue
from tunesmith.label.store import LabelQueue
from tunesmith.label.teacher import parse_label, suggest
from tunesmith.review.endpoint import ChatEndpoint, chat_completions_url

REPLIES = {"plain": "spam", "wordy": "I'd say this is SPAM.", "both": "ham or spam, hard to say", "odd": "banana"}


@pytest.fixture()
def stub_teacher(serving):
    """``(url, asked)``: a chat completions endpoint that answers by the user's text: a `REPLIES` key gets that
    reply, ``fail`` an HTTP 503, ``slow`` no answer until the test ends, anything else is echoed in capitals."""
    asked: list[dict] = []
    released = threading.Event()
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def completions(request: Request):
        body = await request.json()
        text = body["messages"][-1]["content"]
        asked.append({"body": body, "authorization": request.headers.get("authorization")})
        if text == "fail":
            return JSONResponse({"error": {"message": "model overloaded"}}, status_code=503)
        while text == "slow" and not released.is_set():
            await asyncio.sleep(0.05)
        content = REPLIES.get(text, text.upper())
        return {"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}

    @app.get("/health")
    async def health():
        return {"ok": True}

    with serving(app, "/health") as url:
        yield url, asked
        released.set()


def items(*texts: str) -> list:
    return [SimpleNamespace(input=text, messages=None) for text in texts]


def test_classification_replies_are_parsed_and_failures_recorded(stub_teacher):
    url, asked = stub_teacher
    endpoint = ChatEndpoint(chat_completions_url(url), "teacher-7b", api_key="sk-test", timeout_s=2.0)
    got = suggest(items("plain", "wordy", "both", "odd", "fail", "slow"), endpoint, "classification",
                  ["ham", "spam"])
    assert [s.value for s in got] == ["spam", "spam", None, None, None, None]
    assert got[2].error == "the teacher's reply names several of the labels: 'ham or spam, hard to say'"
    assert got[3].error == "the teacher's reply names none of the labels: 'banana'"
    assert got[4].error.startswith(f"teacher {url}/v1/chat/completions answered HTTP 503") \
        and "model overloaded" in got[4].error
    assert got[5].error == f"teacher {url}/v1/chat/completions did not answer within 2s"
    assert len(asked) == 6 and {entry["authorization"] for entry in asked} == {"Bearer sk-test"}
    first = asked[0]["body"]
    assert first["model"] == "teacher-7b" and first["temperature"] == 0
    assert "ham\nspam" in first["messages"][0]["content"]


def test_generation_gets_the_conversation_and_keeps_the_answer(stub_teacher):
    url, asked = stub_teacher
    conversation = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "capital of france?"}]
    got = suggest([SimpleNamespace(input="capital of france?", messages=conversation)],
                  ChatEndpoint(chat_completions_url(url), "t"), "generation", None)
    assert (got[0].value, got[0].error) == ("CAPITAL OF FRANCE?", None)
    assert asked[0]["body"]["messages"] == conversation and asked[0]["authorization"] is None


def test_an_unreachable_teacher_is_recorded_on_every_item():
    endpoint = ChatEndpoint(f"http://127.0.0.1:{distributed.free_port()}/v1/chat/completions", "t", timeout_s=5)
    got = suggest(items("a", "b"), endpoint, "classification", ["ham", "spam"])
    assert [s.value for s in got] == [None, None]
    assert all(s.error.startswith("teacher http://127.0.0.1:") for s in got)


@pytest.mark.parametrize(("reply", "label"), [
    ("spam", "spam"), (" Spam.", "spam"), ('"ham"', "ham"), ("**ham**", "ham"), ("The label is: ham", "ham"),
    ("spammy", None), ("", None), ("Sci/Tech", "Sci/Tech"),
])
def test_parse_label(reply, label):
    assert parse_label(reply, ["ham", "spam", "Sci/Tech"]).value == label


def test_the_queue_records_suggestions_and_errors(stub_teacher, label_run, request_log, records, tmp_path):
    url, _ = stub_teacher
    logs = request_log([records.classified(0, "plain", confidence=0.5), records.classified(1, "odd", confidence=0.6),
                        records.classified(2, "fail", confidence=0.7)], label_run())
    made = create_queue(logs, out=tmp_path / "q.db", teacher=ChatEndpoint(chat_completions_url(url), "teacher-7b"))
    with LabelQueue.open(tmp_path / "q.db") as queue:
        assert queue.meta.teacher_model == "teacher-7b"
        assert [(i.teacher_suggestion, i.teacher_error is None) for i in queue.items()] == [
            ("spam", True), (None, False), (None, False)]
    assert made.suggestions == 1
    rendered = made.render()
    assert "teacher: 1 suggestions" in rendered and "the teacher's reply names none of the labels: 1" in rendered
