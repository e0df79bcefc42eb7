"""The data check of tool-calling rows: each call against its row's declared tools, named by FILE:LINE."""

from __future__ import annotations

import copy
import json

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.check.data_report import check_file
from tunesmith.models.templates import apply_chat_template_choice

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                   "required": ["city"]}}}


def row(name="get_weather", arguments='{"city": "Paris"}', tools=(WEATHER,), result_id="c1", answer="21 degrees."):
    return {"tools": list(tools), "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": result_id, "content": '{"temp": 21}'},
        {"role": "assistant", "content": answer},
    ]}


@pytest.fixture()
def tool_tokenizer(tiny_tokenizer):
    return apply_chat_template_choice(copy.deepcopy(tiny_tokenizer), "chatml")


def check(tmp_path, rows, tokenizer):
    path = tmp_path / "tools.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return check_file(path, tokenizer, 1024, DataConfig(path=str(path)))


def test_calls_are_checked_against_the_declared_tools(tmp_path, tool_tokenizer):
    report = check(tmp_path, [
        row(),
        row(name="get_wether", answer="a"),
        row(arguments='{"town": "Paris"}', answer="b"),
        row(arguments='{"city": "Paris", "days": "three"}', answer="c"),
        row(tools=(), answer="d"),
        row(result_id="c9", answer="e"),
        row(tools=({"type": "function", "function": {"name": "get_weather",
                                                      "parameters": {"type": "nonsense"}}},), answer="f"),
    ], tool_tokenizer)
    found = {f.kind: f for f in report.findings}
    assert set(found) == {"tool_call"}, report.findings
    path = tmp_path / "tools.jsonl"
    assert found["tool_call"].count == 6
    assert found["tool_call"].locations == [
        f"{path}:2 (turn 1: calls 'get_wether', which the row does not declare (declared: get_weather))",
        f"{path}:3 (turn 1: get_weather({{'town': 'Paris'}}): arguments do not match the schema: 'city' is a "
        "required property)",
        f"{path}:4 (turn 1: get_weather({{'city': 'Paris', 'days': 'three'}}): arguments do not match the schema "
        "at days: 'three' is not of type 'integer')",
        f"{path}:5 (turn 1: calls 'get_weather', which the row does not declare (declared: none))",
        f"{path}:6 (turn 2: tool result for call id 'c9', which no call before it has)",
        f"{path}:7 (turn 1: get_weather({{'city': 'Paris'}}): its parameters are not a valid JSON schema "
        "('nonsense' is not valid under any of the given schemas))",
    ]
    assert report.sample["round_trip"] == "ok"


def test_structural_faults_are_unreadable_rows_with_file_and_line(tmp_path, tool_tokenizer):
    orphan = row()
    orphan["messages"].insert(1, {"role": "tool", "content": "x"})
    report = check(tmp_path, [row(), row(arguments="{city: Paris}"), orphan], tool_tokenizer)
    path = tmp_path / "tools.jsonl"
    assert report.unreadable == [
        f"{path}:2: messages[1].tool_calls[0].function.arguments is not valid JSON (Expecting property name "
        "enclosed in double quotes at character 1): '{city: Paris}'",
        f"{path}:3: messages[1] is a tool result with no assistant tool call before it (put the assistant turn "
        "whose tool_calls it answers before it)",
    ]


def test_a_clean_tool_file_has_no_findings(tmp_path, tool_tokenizer):
    report = check(tmp_path, [row(answer=f"answer {i}") for i in range(3)], tool_tokenizer)
    assert [f.kind for f in report.findings] == [] and report.unreadable_count == 0
    assert "[[<tool_call>" in report.sample["text"]
