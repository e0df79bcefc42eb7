"""Log-probabilities on `tunesmith serve` under hostile and concurrent requests: values out of range are a 400 naming
the field while a request in flight finishes; a request that asks for them beside requests that do not changes
none of their answers, and its own values are those it gets alone and those of a direct forward of the model."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import pytest
import torch

from tunesmith.data.tokenize import prompt_token_ids
from tunesmith.serve import load_served

CHAT = "/v1/chat/completions"
PROMPTS = ["tell me about the sea", "what is a cat", "hi", "write one line about rain", "count to three"]


def chat(name: str, text: str, **fields) -> dict:
    return {"model": name, "messages": [{"role": "user", "content": text}], **fields}


REFUSED = [
    ({"logprobs": True, "top_logprobs": 10_000}, "top_logprobs",
     "top_logprobs: is 10000; it must be an integer from 0 to 20"),
    ({"logprobs": True, "top_logprobs": -1}, "top_logprobs", "top_logprobs: is -1; it must be an integer from 0 to 20"),
    ({"logprobs": True, "top_logprobs": 10**40}, "top_logprobs", "top_logprobs: is 10000000000000000000..."),
    ({"logprobs": True, "top_logprobs": 2.5}, "top_logprobs", "top_logprobs: "),
    ({"logprobs": True, "top_logprobs": "all"}, "top_logprobs", "top_logprobs: "),
    ({"top_logprobs": 3}, "top_logprobs", "top_logprobs: needs logprobs: true"),
    ({"logprobs": False, "top_logprobs": 3}, "top_logprobs", "top_logprobs: needs logprobs: true"),
    ({"logprobs": 5}, "logprobs", "logprobs: must be true or false (the number of most likely tokens is "
                                  "top_logprobs)"),
    ({"logprobs": "yes"}, "logprobs", "logprobs: must be true or false"),
]


def test_logprobs_out_of_range_are_a_400_naming_the_field_and_the_request_in_flight_finishes(
        start_server, chatty_model_dir):
    url, state = start_server(lambda: load_served([str(chatty_model_dir)]), max_tokens=300)
    name = chatty_model_dir.name
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(httpx.post, url + CHAT, json=chat(name, "hello", max_tokens=300, logprobs=True,
                                                                  top_logprobs=20), timeout=60)
        while state.engine.active() == 0 and not in_flight.done():
            time.sleep(0.01)
        for fields, param, message in REFUSED:
            answer = httpx.post(url + CHAT, json=chat(name, "x", **fields), timeout=10)
            assert answer.status_code == 400, fields
            error = answer.json()["error"]
            assert (error["param"], error["type"]) == (param, "invalid_request_error"), fields
            assert error["message"].startswith(message) and "Traceback" not in error["message"], error
        done = in_flight.result()
    assert done.status_code == 200
    assert len(done.json()["choices"][0]["logprobs"]["content"][0]["top_logprobs"]) == 20


def direct_first_steps(state, name: str, text: str, steps: int) -> list[torch.Tensor]:
    """The log-softmax of each greedy step by whole forward passes of the model alone."""
    served = state.served
    ids = prompt_token_ids(served.models[name].tokenizer, [{"role": "user", "content": text}])
    found = []
    with torch.inference_mode():
        for _ in range(steps):
            distribution = torch.log_softmax(served.model(input_ids=torch.tensor([ids])).logits[0, -1].float(), -1)
            found.append(distribution)
            token = int(distribution.argmax())
            if token in served.stop_ids:
                break
            ids.append(token)
    return found


def test_a_logprobs_request_beside_plain_ones_harms_none_and_matches_a_direct_forward(start_server, chatty_model_dir):
    # A batch window long enough that the requests sent together are prefilled and decoded as one batch.
    url, state = start_server(lambda: load_served([str(chatty_model_dir)]), batch_window_s=0.3)
    name = chatty_model_dir.name
    asks = {text: index % 2 == 0 for index, text in enumerate(PROMPTS)}  # every other one asks for 20 top tokens
    bodies = {text: chat(name, text, max_tokens=5, **({"logprobs": True, "top_logprobs": 20} if asked else {}))
              for text, asked in asks.items()}
    alone = {text: httpx.post(url + CHAT, json=body, timeout=60).json() for text, body in bodies.items()}
    with concurrent.futures.ThreadPoolExecutor(len(PROMPTS)) as pool:
        together = dict(zip(bodies, pool.map(lambda body: httpx.post(url + CHAT, json=body, timeout=60).json(),
                                             bodies.values())))
    for text, asked in asks.items():
        mine, solo = together[text]["choices"][0], alone[text]["choices"][0]
        assert mine["message"] == solo["message"] and mine["finish_reason"] == solo["finish_reason"]
        if not asked:
            assert mine["logprobs"] is None
            continue
        content = mine["logprobs"]["content"]
        expected = direct_first_steps(state, name, text, 5)
        assert len(content) == len(expected)
        for entry, solo_entry, distribution in zip(content, solo["logprobs"]["content"], expected):
            values = distribution.topk(20).values.tolist()
            assert [top["logprob"] for top in entry["top_logprobs"]] == pytest.approx(values, abs=1e-4)
            assert [top["token"] for top in entry["top_logprobs"]] == [top["token"] for top in
                                                                       solo_entry["top_logprobs"]]
            assert entry["logprob"] == pytest.approx(solo_entry["logprob"], abs=1e-4)
