"""Scoring generated tool calls: parsing the Hermes/Qwen and bare JSON formats, and the metrics over rows."""

from __future__ import annotations

import pytest

from tunesmith.data.example import Example
from tunesmith.evaluate.tool_calls import argument_f1, parse_tool_calls, tool_call_metrics


def call_row(name: str, arguments: dict, line: int = 1) -> Example:
    call = {"type": "function", "function": {"name": name, "arguments": arguments}}
    return Example(messages=({"role": "user", "content": "q"}, {"role": "assistant", "content": "",
                                                               "tool_calls": [call]}), location=f"t.jsonl:{line}")


def text_row(answer: str) -> Example:
    return Example(messages=({"role": "user", "content": "q"}, {"role": "assistant", "content": answer}),
                   location="t.jsonl:9")


@pytest.mark.parametrize("text", [
    '<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>',
    '<tool_call>{"name": "f", "arguments": {"a": 1}}',  # generation stopped before the closing tag
    '{"name": "f", "arguments": {"a": 1}}',
    '{"name": "f", "parameters": {"a": 1}}',  # Llama 3.1's JSON calls
    '[{"type": "function", "function": {"name": "f", "arguments": "{\\"a\\": 1}"}}]',
])
def test_formats_parse_to_the_same_call(text):
    parsed = parse_tool_calls(text)
    assert parsed.valid and parsed.calls == [("f", {"a": 1})]


@pytest.mark.parametrize("text", ["It is sunny.", "<tool_call>{not json}</tool_call>", '{"arguments": {}}', ""])
def test_invalid_or_missing_calls(text):
    assert not parse_tool_calls(text).valid


def test_one_bad_call_among_good_ones_is_not_valid_json():
    parsed = parse_tool_calls('<tool_call>{"name": "f", "arguments": {}}</tool_call><tool_call>{oops</tool_call>')
    assert parsed.calls == [("f", {})] and not parsed.valid


def test_argument_f1_gives_partial_credit():
    reference = [("f", {"city": "Paris", "unit": "C"})]
    assert argument_f1([("f", {"city": "Paris", "unit": "C"})], reference) == 1.0
    assert argument_f1([("f", {"city": "Paris", "unit": "F"})], reference) == pytest.approx(0.5)
    assert argument_f1([("g", {"city": "Paris"})], reference) == 0.0
    assert argument_f1([("f", {})], [("f", {})]) == 1.0


def test_metrics_over_rows():
    examples = [call_row("get_weather", {"city": "Paris"}), call_row("get_weather", {"city": "Rome"}),
                call_row("get_time", {}), text_row("Hello!")]
    predictions = [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',  # exact
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Milan"}}\n</tool_call>',  # name only
        "the time is noon",  # no call
        '<tool_call>{"name": "get_time", "arguments": {}}</tool_call>',  # a call where text was wanted
    ]
    metrics = tool_call_metrics(examples, predictions)
    assert metrics["tool_call_rows"] == 3
    assert metrics["tool_call_valid_json"] == pytest.approx(2 / 3)
    assert metrics["tool_call_name_match"] == pytest.approx(2 / 3)
    assert metrics["tool_call_arguments_exact"] == pytest.approx(1 / 3)
    assert metrics["tool_call_argument_f1"] == pytest.approx(1 / 3)
    assert metrics["tool_call_spurious"] == 1.0


def test_evaluate_model_adds_the_tool_call_metrics(tiny_model, tiny_tokenizer):
    import copy

    from tunesmith.config.schema import EvaluateConfig
    from tunesmith.data.task import Task
    from tunesmith.evaluate.tasks import evaluate_model
    from tunesmith.models.templates import apply_chat_template_choice

    tokenizer = apply_chat_template_choice(copy.deepcopy(tiny_tokenizer), "chatml")
    examples = [call_row("get_weather", {"city": "Paris"}, line) for line in (1, 2)]
    task = Task.of("generation")
    metrics, records = evaluate_model(tiny_model, tokenizer, examples, task,
                                      EvaluateConfig(max_new_tokens=4, batch_size=2), 256)
    assert metrics["tool_call_rows"] == 2 and metrics["tool_call_valid_json"] == 0.0  # a random model calls nothing
    assert len(records) == 2
