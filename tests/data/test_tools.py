"""Tool-calling rows: the tools column and tool_calls/tool turns as OpenAI and Hugging Face write them, rendered
with the chat template's `tools=`, the loss on the assistant's calls and answers only, and a clear error for a
template without tool support."""

from __future__ import annotations

import json

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.formats import to_example
from tunesmith.data.rows import Row
from tunesmith.data.tokenize import (
    IGNORE_INDEX,
    examples_to_columns,
    render_prompt,
    tokenize_batch,
    tokenize_example,
)
from tunesmith.data.tools import TOOLS_KEY, split_tools
from tunesmith.errors import ConfigError
from tunesmith.models.templates import apply_chat_template_choice, tool_support_problem

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}

QWEN_STYLE = (  # Qwen 2.5's tool layout (its template, shortened: no default system prompt)
    "{%- if tools %}{{- '<|im_start|>system\\n' }}"
    "{%- if messages[0].role == 'system' %}{{- messages[0].content + '\\n\\n' }}{%- endif %}"
    "{{- '# Tools\\n\\n<tools>' }}{%- for tool in tools %}{{- '\\n' }}{{- tool | tojson }}{%- endfor %}"
    "{{- '\\n</tools><|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) or "
    "(message.role == 'assistant' and not message.tool_calls) %}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
    "{%- elif message.role == 'system' and not tools %}"
    "{{- '<|im_start|>system\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- elif message.role == 'assistant' %}{{- '<|im_start|>' + message.role }}"
    "{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}"
    "{%- for tool_call in message.tool_calls %}{%- if tool_call.function is defined %}"
    "{%- set tool_call = tool_call.function %}{%- endif %}"
    "{{- '\\n<tool_call>\\n{\"name\": \"' }}{{- tool_call.name }}{{- '\", \"arguments\": ' }}"
    "{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}{%- endfor %}{{- '<|im_end|>\\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != 'tool') %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\\n<tool_response>\\n' }}{{- message.content }}{{- '\\n</tool_response>' }}"
    "{%- if loop.last or (messages[loop.index0 + 1].role != 'tool') %}{{- '<|im_end|>\\n' }}{%- endif %}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def tool_row(**changes) -> Row:
    data = {
        "tools": [WEATHER],
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function",
                 "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "name": "get_weather", "content": '{"temp": 21}'},
            {"role": "assistant", "content": "It is 21 degrees in Paris."},
        ],
    }
    return Row("tools.jsonl", 4, {**data, **changes})


def convert(row: Row, fmt: str = "messages"):
    return to_example(row, fmt, DataConfig(path="tools.jsonl"), None)


@pytest.fixture()
def tool_tokenizer(tiny_tokenizer):
    import copy

    return apply_chat_template_choice(copy.deepcopy(tiny_tokenizer), "chatml")


def test_openai_row_is_normalized_with_its_tools_on_the_conversation():
    example = convert(tool_row())
    messages, tools = split_tools(list(example.messages))
    assert tools == [WEATHER]
    call = messages[1]
    assert call["content"] == "" and call["tool_calls"] == [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}, "id": "c1"}]
    assert messages[2] == {"role": "tool", "content": '{"temp": 21}', "tool_call_id": "c1", "name": "get_weather"}


def test_hugging_face_shapes_read_the_same():
    """Arguments as an object, a bare tool definition, tools as a JSON string, a tool result as an object."""
    bare = {key: WEATHER["function"][key] for key in ("name", "description", "parameters")}
    row = tool_row(tools=json.dumps([bare]))
    row.data["messages"][1] = {"role": "assistant", "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}
    row.data["messages"][2] = {"role": "tool", "content": {"temp": 21}}
    messages, tools = split_tools(list(convert(row).messages))
    assert tools == [WEATHER]
    assert messages[1]["tool_calls"][0]["function"]["arguments"] == {"city": "Paris"}
    assert messages[2]["content"] == '{"temp": 21}'


def test_sharegpt_function_call_and_observation_turns():
    row = Row("s.jsonl", 2, {"tools": [WEATHER], "conversations": [
        {"from": "human", "value": "Weather in Paris?"},
        {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Paris"}}'},
        {"from": "observation", "value": '{"temp": 21}'},
        {"from": "gpt", "value": "21 degrees."}]})
    messages, tools = split_tools(list(convert(row, "sharegpt").messages))
    assert tools == [WEATHER] and [m["role"] for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Paris"}}


def test_system_prompt_keeps_the_tools_on_the_first_message():
    example = to_example(tool_row(), "messages", DataConfig(path="t.jsonl", system_prompt="Be brief."), None)
    assert example.messages[0]["role"] == "system" and TOOLS_KEY in example.messages[0]


@pytest.mark.parametrize("template", ["chatml", "qwen"])
def test_loss_covers_the_calls_and_the_answer_not_the_tool_result(tiny_tokenizer, template):
    import copy

    tokenizer = copy.deepcopy(tiny_tokenizer)
    if template == "qwen":
        tokenizer.chat_template = QWEN_STYLE
    else:
        apply_chat_template_choice(tokenizer, "chatml")
    item = tokenize_example(convert(tool_row()), tokenizer, 4096)
    learned = tokenizer.decode([t for t, label in zip(item.input_ids, item.labels) if label != IGNORE_INDEX])
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>' in learned
    assert "It is 21 degrees in Paris.<|im_end|>" in learned
    assert "temp" not in learned and "Weather in Paris?" not in learned and "get_weather" in learned
    everything = tokenizer.decode(item.input_ids)
    assert "Current weather in a city" in everything and '{"temp": 21}' in everything


def test_generation_prompt_declares_the_tools(tool_tokenizer):
    prompt = render_prompt(tool_tokenizer, convert(tool_row()).prompt_messages)
    assert "<tools>" in prompt and "get_weather" in prompt and prompt.endswith("<|im_start|>assistant\n")


def test_rows_with_different_tools_render_each_with_its_own(tool_tokenizer):
    other = {"type": "function", "function": {"name": "get_time", "description": "Clock", "parameters": {}}}
    first, second = convert(tool_row()), convert(tool_row(tools=[other]))
    items = tokenize_batch([first, second], tool_tokenizer, 4096)
    texts = [tool_tokenizer.decode(item.input_ids) for item in items]
    assert "Current weather" in texts[0] and "Clock" not in texts[0] and "Clock" in texts[1]


def test_plain_rows_render_as_before_with_the_tool_capable_chatml(tool_tokenizer):
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    assert tool_tokenizer.apply_chat_template(messages, tokenize=False) == (
        "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\nhello<|im_end|>\n")


def test_a_template_without_tool_support_is_an_error_naming_it(tiny_tokenizer):
    """The tiny tokenizer's template is SmolLM2's layout: each turn's content only, no calls."""
    assert tool_support_problem(tiny_tokenizer).startswith("does not write the declared tools")
    with pytest.raises(ConfigError) as caught:
        tokenize_example(convert(tool_row()), tiny_tokenizer, 4096)
    message = str(caught.value)
    assert message.startswith("config: model.chat_template: the data has tool calls, but the model's own chat "
                              "template does not write the declared tools or the call's function name")
    assert "it has no tool support" in message and "set model.chat_template: chatml" in message


def test_smollm2_template_has_no_tool_support(default_tokenizer):
    with pytest.raises(ConfigError, match=r"the model's own chat template \(.*SmolLM2-135M-Instruct\) does not "
                       "write the declared tools"):
        tokenize_example(convert(tool_row()), default_tokenizer, 4096)


def test_tool_rows_survive_the_arrow_columns_of_parallel_tokenization(tool_tokenizer):
    from tunesmith.data.tokenize import _examples_from_columns

    example = convert(tool_row())
    assert _examples_from_columns(examples_to_columns([example]))[0].messages == example.messages
