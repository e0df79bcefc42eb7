"""Log-probabilities on ``/v1/chat/completions`` (``logprobs``, ``top_logprobs``) through the real `openai` client
against a server of the chatty tiny model: OpenAI's shape, the values of a direct forward of the model, whole and
streamed; a request that does not ask gets none; ``/v1/completions`` refuses them, naming the field."""

from __future__ import annotations

import httpx
import openai
import pytest
import torch

from tunesmith.data.tokenize import prompt_token_ids
from tunesmith.serve.served import load_served

MESSAGES = [{"role": "user", "content": "tell me about the sea"}]


@pytest.fixture()
def chatty_server(start_server, chatty_model_dir):
    url, state = start_server(lambda: load_served([str(chatty_model_dir)]))
    return url, state, chatty_model_dir.name


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)


def direct_steps(state, name: str, messages: list[dict], steps: int) -> list[tuple[int, torch.Tensor]]:
    """Greedy decoding by whole forward passes (no cache, no batch): each chosen token and its step's
    log-softmax over the vocabulary, up to and with the end-of-turn token."""
    served = state.served
    tokenizer = served.models[name].tokenizer
    ids = prompt_token_ids(tokenizer, messages)
    found = []
    with torch.inference_mode():
        for _ in range(steps):
            logits = served.model(input_ids=torch.tensor([ids])).logits[0, -1]
            distribution = torch.log_softmax(logits.float(), dim=-1)
            token = int(distribution.argmax())
            found.append((token, distribution))
            if token in served.stop_ids:
                break
            ids.append(token)
    return found


def test_logprobs_match_a_direct_forward_in_openais_shape(chatty_server):
    url, state, name = chatty_server
    reply = client(url).chat.completions.create(model=name, messages=MESSAGES, max_tokens=6, logprobs=True,
                                               top_logprobs=5)
    choice = reply.choices[0]
    tokenizer = state.served.models[name].tokenizer
    expected = direct_steps(state, name, MESSAGES, 6)
    content = choice.logprobs.content
    # One entry per chosen token; an answer that ended at its end-of-turn token has that token's entry too.
    assert len(content) == reply.usage.completion_tokens + (choice.finish_reason == "stop") == len(expected)
    for entry, (token, distribution) in zip(content, expected):
        assert entry.token == tokenizer.decode([token]) and entry.bytes == list(entry.token.encode())
        assert entry.logprob == pytest.approx(float(distribution[token]), abs=1e-4)
        values, ids = distribution.topk(5)
        assert [top.token for top in entry.top_logprobs] == [tokenizer.decode([i]) for i in ids.tolist()]
        assert [top.logprob for top in entry.top_logprobs] == pytest.approx(values.tolist(), abs=1e-4)
        assert entry.top_logprobs[0].logprob == entry.logprob  # greedy: the chosen token leads
    assert choice.message.content == tokenizer.decode([t for t, _ in expected if t not in state.served.stop_ids],
                                                      skip_special_tokens=True)


def test_logprobs_without_top_logprobs_and_no_logprobs_unless_asked(chatty_server):
    url, _, name = chatty_server
    asked = client(url).chat.completions.create(model=name, messages=MESSAGES, max_tokens=4, logprobs=True)
    content = asked.choices[0].logprobs.content
    assert content and all(entry.top_logprobs == [] for entry in content)
    plain = client(url).chat.completions.create(model=name, messages=MESSAGES, max_tokens=4)
    assert plain.choices[0].logprobs is None
    assert plain.choices[0].message.content == asked.choices[0].message.content
    raw = httpx.post(f"{url}/v1/chat/completions", json={"model": name, "messages": MESSAGES, "max_tokens": 2,
                                                         "logprobs": True, "top_logprobs": 2}).json()
    assert set(raw["choices"][0]["logprobs"]) == {"content", "refusal"}
    assert set(raw["choices"][0]["logprobs"]["content"][0]) == {"token", "logprob", "bytes", "top_logprobs"}
    assert set(raw["choices"][0]["logprobs"]["content"][0]["top_logprobs"][0]) == {"token", "logprob", "bytes"}


def test_a_streamed_answer_with_logprobs_comes_whole_in_one_chunk(chatty_server):
    url, _, name = chatty_server
    whole = client(url).chat.completions.create(model=name, messages=MESSAGES, max_tokens=6, logprobs=True,
                                               top_logprobs=3)
    chunks = list(client(url).chat.completions.create(model=name, messages=MESSAGES, max_tokens=6, logprobs=True,
                                                      top_logprobs=3, stream=True,
                                                      stream_options={"include_usage": True}))
    with_text = [chunk for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]
    assert len(with_text) == 1 and with_text[0].choices[0].delta.content == whole.choices[0].message.content
    assert with_text[0].choices[0].logprobs.content == whole.choices[0].logprobs.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_text_completions_refuse_logprobs_naming_the_field_and_the_route_that_has_them(chatty_server):
    url, _, name = chatty_server
    response = httpx.post(f"{url}/v1/completions", json={"model": name, "prompt": "hi", "logprobs": 2})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "logprobs"
    assert error["message"] == ("logprobs is not supported on /v1/completions: ask /v1/chat/completions, which "
                                "returns them (logprobs: true, top_logprobs: 0-20)")
    with pytest.raises(openai.BadRequestError, match="logprobs is not supported on /v1/completions"):
        client(url).completions.create(model=name, prompt="hi", logprobs=1)
    assert httpx.post(f"{url}/v1/completions", json={"model": name, "prompt": "hi", "max_tokens": 2,
                                                     "logprobs": None}).status_code == 200
