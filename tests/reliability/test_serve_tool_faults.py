"""Hostile tool-calling requests to `/v1/chat/completions`: each is one 4xx JSON error naming the field, refused
before the model is asked, and the server keeps answering the others."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest

from tunesmith.serve.served import load_served

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                            "parameters": {"type": "object", "properties": {}}}}
ASK = [{"role": "user", "content": "Weather?"}]
CALLED = {"role": "assistant", "content": None,
          "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]}


@pytest.fixture()
def server(start_server, chatty_model_dir):
    url, _ = start_server(lambda: load_served([str(chatty_model_dir)]))
    return url


@pytest.mark.parametrize(("body", "named"), [
    ({"messages": ASK, "tools": [WEATHER], "tool_choice": "required"}, "tool_choice"),
    ({"messages": ASK, "tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
     "tool_choice"),
    ({"messages": ASK, "tools": [{"type": "retrieval"}]}, "tools"),
    ({"messages": ASK, "tools": [{"type": "function", "function": {"name": ""}}]}, "tools"),
    ({"messages": ASK, "tools": [WEATHER] * 257}, "tools"),
    ({"messages": ASK, "tools": "get_weather"}, "tools"),
    ({"messages": [*ASK, {**CALLED, "tool_calls": [{"function": {"name": "get_weather", "arguments": "{oops"}}]}]},
     "arguments"),
    ({"messages": [*ASK, {**CALLED, "tool_calls": [{"function": {"name": "get_weather", "arguments": "[1]"}}]}]},
     "arguments"),
    ({"messages": [*ASK, CALLED, {"role": "tool", "tool_call_id": "c1"}]}, "content"),
    ({"messages": [{"role": "user", "content": None}]}, "content"),
    ({"messages": [{**CALLED, "role": "user"}]}, "tool_calls"),
])
def test_a_malformed_tool_request_is_a_400_naming_the_field(server, body, named):
    refused = httpx.post(f"{server}/v1/chat/completions", json={**body, "max_tokens": 2})
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert named in (error.get("param") or "") + error["message"], error


def test_tools_on_a_text_completion_are_refused(server):
    refused = httpx.post(f"{server}/v1/completions", json={"prompt": "hi", "tools": [WEATHER], "max_tokens": 2})
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "tools"


def test_a_huge_tool_definition_is_refused_before_it_is_tokenized(server):
    huge = {"type": "function", "function": {"name": "f", "description": "x" * 4_000_000}}
    started = time.monotonic()
    refused = httpx.post(f"{server}/v1/chat/completions", json={"messages": ASK, "tools": [huge], "max_tokens": 2},
                         timeout=60)
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "context_length_exceeded"
    assert time.monotonic() - started < 5


def test_bad_tool_requests_beside_good_ones_do_not_harm_them(server):
    good = {"messages": ASK, "max_tokens": 3}
    bad = {"messages": ASK, "tools": [WEATHER], "max_tokens": 3}  # this template has no tool support
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda body: httpx.post(f"{server}/v1/chat/completions", json=body, timeout=60),
                                [good, bad] * 6))
    assert [answer.status_code for answer in answers] == [200, 400] * 6
    assert all(answer.json()["choices"][0]["message"]["content"] for answer in answers[::2])
