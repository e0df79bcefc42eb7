"""Tool calling on `/v1/chat/completions`: the offered tools reach the chat template as training rendered them,
the reply's calls come back in OpenAI's shape (whole and streamed, read by the OpenAI client itself), a
conversation that carries earlier calls and tool results renders, and a template without tool support is a 400
naming ``tools``. The tiny model's own replies are noise, so the engine's final text is scripted; everything else
(rendering, tokenizing, generating, logging) is the real path."""

from __future__ import annotations

import dataclasses
import json
import shutil

import httpx
import openai
import pytest
from transformers import AutoTokenizer

from tunesmith.models.templates import BUILTIN_TEMPLATES
from tunesmith.monitor.request_log import read_log
from tunesmith.serve.engine import Engine
from tunesmith.serve.generation import Finished
from tunesmith.serve.served import load_served
from tunesmith.serve.tool_api import reply_tool_calls

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
CALL_TEXT = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


@pytest.fixture()
def tool_model_dir(tmp_path, chatty_model_dir):
    """The chatty tiny model with tunesmith's built-in chatml, which renders tools (Hermes / Qwen 2.5 layout), and
    room for its tool preamble."""
    folder = tmp_path / "tool-model"
    shutil.copytree(chatty_model_dir, folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.chat_template = BUILTIN_TEMPLATES["chatml"]
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())  # the tool preamble alone is ~600 tiny tokens
    (folder / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 2048}))
    return folder


@pytest.fixture()
def scripted(monkeypatch):
    """``scripted(text)``: every generation runs for real, then ends with ``text`` as its answer; returns the list
    of prompts (decoded) the engine was given."""
    prompts: list[list[int]] = []
    real_stream = Engine.stream

    def stream(self, prompt_ids, sampling, adapter, stop_ids, deadline):
        prompts.append(list(prompt_ids))
        events = real_stream(self, prompt_ids, sampling, adapter, stop_ids, deadline)

        async def scripted_events():
            async for event in events:
                if isinstance(event, Finished):
                    yield dataclasses.replace(event, text=scripted.text, reason="stop")

        return scripted_events()

    def script(text: str) -> list:
        scripted.text = text
        return prompts

    monkeypatch.setattr(Engine, "stream", stream)
    return script


def test_offered_tools_reach_the_template_and_the_calls_come_back_in_openais_shape(start_server, tool_model_dir,
                                                                                   scripted, tmp_path):
    prompts = scripted(CALL_TEXT)
    url, state = start_server(lambda: load_served([str(tool_model_dir)]))
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused")
    answer = client.chat.completions.create(model=tool_model_dir.name, max_tokens=4, tools=[WEATHER],
                                            messages=[{"role": "user", "content": "Weather in Paris?"}])
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    assert call.id.startswith("call_")
    prompt = state.served.models[tool_model_dir.name].tokenizer.decode(prompts[0])
    assert "<tools>" in prompt and "Current weather of a city" in prompt
    (record,) = [r for r in read_log(tmp_path / "logs") if r["kind"] == "request"]
    assert record["messages"][0]["tools"][0]["function"]["name"] == "get_weather"

    # The next turn: the call and its result go back into the conversation, and the model answers in text.
    scripted("It is sunny in Paris.")
    follow_up = client.chat.completions.create(model=tool_model_dir.name, max_tokens=4, tools=[WEATHER], messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": '{"sky": "sunny", "celsius": 21}'}])
    assert follow_up.choices[0].message.content == "It is sunny in Paris."
    assert follow_up.choices[0].finish_reason == "stop" and not follow_up.choices[0].message.tool_calls
    prompt = state.served.models[tool_model_dir.name].tokenizer.decode(prompts[1])
    assert '"city": "Paris"' in prompt and "celsius" in prompt


def test_tool_choice_none_hides_the_tools_and_the_answer_stays_text(start_server, tool_model_dir, scripted):
    prompts = scripted(CALL_TEXT)
    url, state = start_server(lambda: load_served([str(tool_model_dir)]))
    answer = httpx.post(f"{url}/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "Weather?"}], "tools": [WEATHER], "tool_choice": "none",
        "max_tokens": 4}).json()
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": CALL_TEXT}
    prompt = state.served.models[tool_model_dir.name].tokenizer.decode(prompts[0])
    assert "<tools>" not in prompt


def test_a_streamed_answer_with_tools_is_sent_whole_and_the_client_merges_it(start_server, tool_model_dir,
                                                                             scripted):
    scripted(CALL_TEXT)
    url, _ = start_server(lambda: load_served([str(tool_model_dir)]))
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused")
    chunks = list(client.chat.completions.create(
        model=tool_model_dir.name, max_tokens=4, tools=[WEATHER], stream=True,
        stream_options={"include_usage": True}, messages=[{"role": "user", "content": "Weather in Paris?"}]))
    (delta,) = [chunk.choices[0].delta for chunk in chunks if chunk.choices and chunk.choices[0].delta.tool_calls]
    assert delta.tool_calls[0].index == 0 and delta.tool_calls[0].function.name == "get_weather"
    assert json.loads(delta.tool_calls[0].function.arguments) == {"city": "Paris"}
    assert [chunk.choices[0].finish_reason for chunk in chunks if chunk.choices][-1] == "tool_calls"
    assert chunks[-1].usage.completion_tokens >= 1


def test_a_reply_that_is_not_a_whole_call_is_text(start_server, tool_model_dir, scripted):
    scripted('<tool_call>{"name": "get_weather", "arguments": {"city": ')
    url, _ = start_server(lambda: load_served([str(tool_model_dir)]))
    answer = httpx.post(f"{url}/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "Weather?"}], "tools": [WEATHER], "max_tokens": 4}).json()
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["choices"][0]["message"]["content"].startswith("<tool_call>")


def test_a_template_without_tool_support_is_a_400_naming_tools(start_server, chatty_model_dir):
    url, _ = start_server(lambda: load_served([str(chatty_model_dir)]))
    refused = httpx.post(f"{url}/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "Weather?"}], "tools": [WEATHER], "max_tokens": 4})
    assert refused.status_code == 400
    error = refused.json()["error"]
    assert error["param"] == "tools" and "no tool support" in error["message"]
    # Without tools the same model answers.
    assert httpx.post(f"{url}/v1/chat/completions", json={
        "messages": [{"role": "user", "content": "Weather?"}], "max_tokens": 2}).status_code == 200


@pytest.mark.parametrize(("text", "calls"), [
    (CALL_TEXT, [("get_weather", {"city": "Paris"})]),
    ('{"name": "a", "arguments": {}}', [("a", {})]),
    ('<tool_call>{"name": "a", "arguments": {}}</tool_call><tool_call>{"name": "b", "arguments": {"x": 1}}'
     '</tool_call>', [("a", {}), ("b", {"x": 1})]),
    ("Sunny.", None),
    ('<tool_call>{"name": "a"', None),
])
def test_reply_tool_calls(text, calls):
    found = reply_tool_calls(text)
    if calls is None:
        assert found is None
    else:
        assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in found] == calls
        assert len({c["id"] for c in found}) == len(found)
