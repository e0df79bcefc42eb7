"""The playground's models (loaded once on first use, the oldest unloaded when another run needs room), what each
pane is called, and what a pane's model is asked: in single-turn mode (a classification run's default) the last
message alone, as evaluation asked each test row, so a message gets the same answer whatever came before it."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tunesmith.run_dir import RunDir
from tunesmith.ui import UiSettings, create_ui_app, playground
from tunesmith.ui.playground import Playground, PlaygroundRequest, playground_conversation
from tunesmith.web import HttpError

SPAM = "WINNER!! Claim your free prize now: text WIN to 80086"
HAM = "Are we still on for lunch tomorrow?"
INSTRUCTION = "Classify the following text. Answer with one of: ham, spam."


def test_a_run_loads_once_and_the_least_recently_used_makes_room(runs_dir, monkeypatch):
    monkeypatch.setattr(playground, "KEEP_LOADED", 1)
    models = Playground()
    try:
        first = models.load(RunDir(runs_dir / "spam-done"))
        assert models.load(RunDir(runs_dir / "spam-done")) is first
        assert first.base.engine is first.tuned.engine  # an adapter run and its base share one engine
        second = models.load(RunDir(runs_dir / "spam-full"))
        assert second.base.engine is not second.tuned.engine  # a full fine-tune's base loads apart
        assert not first.tuned.engine._thread.is_alive()  # unloaded to make room
        assert second.tuned.engine._thread.is_alive()
    finally:
        models.close()
    assert not second.tuned.engine._thread.is_alive() and not second.base.engine._thread.is_alive()


@pytest.fixture(scope="module")
def client(runs_dir):
    with TestClient(create_ui_app(UiSettings(runs_dir=runs_dir, max_tokens=6)), base_url="http://127.0.0.1") as client:
        client.get("/")  # the first page sets the session's CSRF cookie
        client.headers["X-CSRF-Token"] = client.cookies["tunesmith_csrf"]
        yield client


def test_each_pane_is_titled_with_its_model_and_a_classifier_answers_one_message_at_a_time(client, chatty_dir):
    info = client.post("/api/playground/load", json={"run": "spam-done"}).json()
    assert info["titles"] == {
        "tuned": {"name": "spam-done", "detail": f"tuned: LoRA adapter on {chatty_dir.name}"},
        "base": {"name": chatty_dir.name, "detail": f"base: {chatty_dir}, untuned"}}
    assert info["single_turn"] is True and info["task"] == "classification" and info["instruction"] == INSTRUCTION
    full = client.post("/api/playground/load", json={"run": "spam-full"}).json()["titles"]
    assert full["tuned"]["detail"] == f"tuned: full fine-tune of {chatty_dir.name}"
    assert full["base"]["name"] == chatty_dir.name


def answer(client, messages: list[dict], side: str = "tuned", **extra) -> tuple[str, dict]:
    request = {"run": "spam-done", "side": side, "messages": messages, "max_tokens": 6, **extra}
    with client.stream("POST", "/api/playground/chat", json=request) as response:
        assert response.status_code == 200
        events = [json.loads(line.removeprefix("data: ")) for line in response.iter_lines()
                  if line.startswith("data: ")]
    return "".join(event.get("text", "") for event in events[:-1]), events[-1]


def after_spam(spam_answer: str) -> list[dict]:
    return [{"role": "user", "content": SPAM}, {"role": "assistant", "content": spam_answer},
            {"role": "user", "content": HAM}]


@pytest.mark.parametrize("side", ["tuned", "base"])
def test_the_ham_message_right_after_a_spam_one_is_asked_alone(client, monkeypatch, side):
    asked = []
    render = playground._prompt_ids
    monkeypatch.setattr(playground, "_prompt_ids", lambda tokenizer, conversation, template: (
        asked.append(conversation), render(tokenizer, conversation, template))[1])
    alone, alone_end = answer(client, [{"role": "user", "content": HAM}], side)
    spam_answer, _ = answer(client, [{"role": "user", "content": SPAM}], side)
    after, after_end = answer(client, after_spam(spam_answer), side)  # the run's default: single-turn
    # Only the last message is in the prompt (put after the run's instruction, as evaluation asked each row) ...
    assert asked[0] == asked[2] == [{"role": "user", "content": f"{INSTRUCTION}\n\n{HAM}"}]
    # ... so its prompt is the same tokens, and the greedy answer the same, as when it was sent alone.
    assert after_end["prompt_tokens"] == alone_end["prompt_tokens"] and after == alone
    # Keeping the history puts the earlier turns in the prompt, as sent.
    _, kept_end = answer(client, after_spam(spam_answer), side, single_turn=False, system="You sort messages.")
    assert asked[-1] == [{"role": "system", "content": "You sort messages."}, *after_spam(spam_answer)]
    assert kept_end["prompt_tokens"] > alone_end["prompt_tokens"]


def test_single_turn_needs_a_user_message_last():
    request = PlaygroundRequest(run="r", side="tuned", messages=[{"role": "user", "content": "hi"},
                                                                {"role": "assistant", "content": "ham"}])
    with pytest.raises(HttpError) as refused:
        playground_conversation(request, None, single_turn=True)
    assert refused.value.status == 400 and "keep the history" in refused.value.message
