"""Hostile tool-calling rows and replies: arguments that are not JSON, a huge tools list, missing fields, calls on
the wrong turn, and generated text that only looks like a call. Each bad row is one DataError naming FILE:LINE
(the data check lists it as unreadable and reads on); a reply that cannot be parsed scores as no call, never a
traceback."""

from __future__ import annotations

import copy
import json
import time

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.check.data_report import check_file
from tunesmith.data.formats import to_example
from tunesmith.data.rows import Row
from tunesmith.data.tools import MAX_TOOLS
from tunesmith.errors import DataError
from tunesmith.evaluate.tool_calls import parse_tool_calls, tool_call_metrics
from tunesmith.models.templates import apply_chat_template_choice

TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}


def messages(call=None, result=None):
    call = {"type": "function", "function": {"name": "f", "arguments": "{}"}} if call is None else call
    return [{"role": "user", "content": "q"}, {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "content": "r"} if result is None else result, {"role": "assistant", "content": "a"}]


def error_of(data: dict) -> str:
    with pytest.raises(DataError) as caught:
        to_example(Row("bad.jsonl", 7, data), "messages", DataConfig(path="bad.jsonl"), None)
    return str(caught.value)


@pytest.mark.parametrize(("data", "expected"), [
    ({"tools": [TOOL], "messages": messages({"function": {"name": "f", "arguments": "{'a': 1"}})},
     "bad.jsonl:7: messages[1].tool_calls[0].function.arguments is not valid JSON (Expecting property name enclosed "
     "in double quotes at character 1): \"{'a': 1\""),
    ({"tools": [TOOL], "messages": messages({"function": {"name": "f", "arguments": "[1, 2]"}})},
     "bad.jsonl:7: messages[1].tool_calls[0].function.arguments must be a JSON object, got [1, 2] (write the "
     "arguments as {\"name\": value, ...})"),
    ({"tools": [TOOL], "messages": messages({"function": {"arguments": "{}"}})},
     "bad.jsonl:7: messages[1].tool_calls[0] has no function name (its keys: arguments)"),
    ({"tools": [TOOL], "messages": messages("f()")},
     "bad.jsonl:7: messages[1].tool_calls[0] must be an object {type: function, function: {name, arguments}}, "
     "got 'f()'"),
    ({"tools": [TOOL], "messages": messages(result={"role": "tool"})},
     "bad.jsonl:7: messages[2].content is missing: a tool message carries the tool's result"),
    ({"tools": "[{not json", "messages": messages()},
     "bad.jsonl:7: tools is not valid JSON (Expecting property name enclosed in double quotes at character 2): "
     "'[{not json'"),
    ({"tools": {"name": "f"}, "messages": messages()},
     "bad.jsonl:7: key 'tools' must be a list of tool definitions, got {'name': 'f'}"),
    ({"tools": [{"type": "function", "function": {"description": "no name"}}], "messages": messages()},
     "bad.jsonl:7: tools[0] has no function name (its keys: description)"),
    ({"tools": [{"type": "retrieval"}], "messages": messages()},
     "bad.jsonl:7: tools[0] must be a function tool ({type: function, function: {name, description, parameters}}), "
     "got {'type': 'retrieval'}"),
    ({"tools": [{"name": "f", "parameters": "object"}], "messages": messages()},
     "bad.jsonl:7: tools[0].parameters must be a JSON schema object, got 'object'"),
    ({"messages": [{"role": "user", "content": "q", "tool_calls": []}, {"role": "assistant", "content": "a"}]},
     "bad.jsonl:7: messages[0] is a user turn with tool_calls; only assistant turns call tools"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": None}]},
     "bad.jsonl:7: messages[1].content must be a string, got NoneType"),
    ({"messages": messages()[:1] + [{"role": "assistant", "content": "", "tool_calls": "f"}]},
     "bad.jsonl:7: messages[1].tool_calls must be a non-empty list of calls, got 'f'"),
])
def test_each_bad_row_is_one_error_line(data, expected):
    assert error_of(data) == expected


def test_arguments_nested_past_the_parser_limit_are_one_error_line():
    deep = "[" * 100_000 + "]" * 100_000
    message = error_of({"tools": [TOOL], "messages": messages({"function": {"name": "f", "arguments": deep}})})
    assert message.startswith("bad.jsonl:7: messages[1].tool_calls[0].function.arguments nests JSON too deeply")


def test_a_huge_tools_list_is_refused_fast():
    tools = [{"type": "function", "function": {"name": f"f{i}", "parameters": {}}} for i in range(100_000)]
    started = time.perf_counter()
    message = error_of({"tools": tools, "messages": messages()})
    assert message == (f"bad.jsonl:7: key 'tools' declares 100000 tools; at most {MAX_TOOLS} are read (declare only "
                       "the tools this conversation may call)")
    assert time.perf_counter() - started < 1


def test_the_data_check_lists_hostile_rows_and_checks_the_rest(tmp_path, tiny_tokenizer):
    tokenizer = apply_chat_template_choice(copy.deepcopy(tiny_tokenizer), "chatml")
    good = {"tools": [TOOL], "messages": messages()}
    rows = [good, {"tools": [TOOL], "messages": messages({"function": {"name": "f", "arguments": "{"}})},
            {"tools": [TOOL] * (MAX_TOOLS + 1), "messages": messages()}, {"tools": [TOOL]}]
    path = tmp_path / "hostile.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    report = check_file(path, tokenizer, 512, DataConfig(path=str(path)))
    assert [line.split(": ")[0] for line in report.unreadable] == [f"{path}:{n}" for n in (2, 3, 4)]
    assert report.splits[0].rows == 1 and report.sample["round_trip"] == "ok"


@pytest.mark.parametrize("reply", [
    "<tool_call>" * 10_000,
    "[" * 100_000 + "]" * 100_000,  # deeper than json's recursion limit
    '<tool_call>{"name": 5, "arguments": {}}</tool_call>',
    '<tool_call>{"name": "f", "arguments": "not json"}</tool_call>',
    '{"name": "f", "arguments": [1]}',
    "\x00\ufffd<tool_call>\n</tool_call>",
])
def test_hostile_replies_score_as_no_valid_call(reply):
    assert not parse_tool_calls(reply).valid
    example_call = {"type": "function", "function": {"name": "f", "arguments": {}}}
    from tunesmith.data.example import Example

    example = Example(messages=({"role": "user", "content": "q"},
                                {"role": "assistant", "content": "", "tool_calls": [example_call]}), location="x:1")
    assert tool_call_metrics([example], [reply])["tool_call_valid_json"] == 0.0


def _tool_project(project, write_jsonl):
    rows = []
    for number in range(16):
        city = ["Paris", "Oslo", "Lima", "Rome"][number % 4]
        rows.append({"tools": [TOOL], "messages": [
            {"role": "user", "content": f"Question {number} about {city}?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"type": "function", "function": {"name": "f", "arguments": json.dumps({"city": city})}}]}]})
    write_jsonl(project / "data.jsonl", rows)


def test_a_run_with_a_template_without_tool_support_stops_with_one_line(project, write_jsonl, cli):
    _tool_project(project, write_jsonl)
    code, _, error = cli("run", "config.yaml")
    assert code != 0 and "Traceback" not in error
    assert ("model.chat_template: the data has tool calls, but the model's own chat template" in error
            and "it has no tool support" in error)


def test_a_run_on_tool_rows_trains_and_scores_the_calls(project, write_jsonl, cli):
    _tool_project(project, write_jsonl)
    code, _, error = cli("run", "config.yaml", "--set", "model.chat_template=chatml", "--set", "output.name=tools",
                         "--set", "data.max_length=512",  # the tiny tokenizer spends ~2 characters a token
                         "--set", "evaluate.max_new_tokens=16", "--set", "evaluate.compare_base=false")
    assert code == 0, error
    evaluation = json.loads(next(project.rglob("eval.json")).read_text(encoding="utf-8"))
    metrics = json.dumps(evaluation)
    assert '"tool_call_rows"' in metrics and '"tool_call_argument_f1"' in metrics
