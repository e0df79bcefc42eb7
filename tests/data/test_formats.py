"""Rows → Examples: column mapping, label handling, the exact conversation of each format (ShareGPT, OpenAI
fine-tuning JSONL with `weight`, multi-turn included), and lenient conversion of many rows."""

from __future__ import annotations

import json
from typing import get_args

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.config.vocabulary import RowFormat
from tunesmith.data.example import Example
from tunesmith.data.fields import detect_format
from tunesmith.data.formats import CONVERTERS, convert_rows, text_of_user_turn, to_example
from tunesmith.data.readers import read_rows
from tunesmith.data.rows import Row
from tunesmith.data.splits import load_splits
from tunesmith.data.tokenize import IGNORE_INDEX, encode_texts, tokenize_example
from tunesmith.errors import DataError


def row(line: int = 1, **data) -> Row:
    return Row("d.jsonl", line, data)


def config(**fields) -> DataConfig:
    return DataConfig(path="d.jsonl", **fields)


def user(content: str) -> dict:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


def test_classification_example_is_exactly_as_specified():
    example = to_example(row(3, text="WIN a prize!", label="spam"), "classification", config(), ["ham", "spam"])
    assert example.messages == (
        user("Classify the following text. Answer with one of: ham, spam.\n\nWIN a prize!"),
        assistant("spam"),
    )
    assert (example.label, example.target, example.location) == ("spam", None, "d.jsonl:3")


def test_classification_with_system_prompt_and_custom_instruction():
    cfg = config(system_prompt="Be brief.", instruction="Is it {labels}? {not a placeholder}")
    example = to_example(row(text="hello", label="ham"), "classification", cfg, ["ham", "spam"])
    assert example.messages == (
        {"role": "system", "content": "Be brief."},
        user("Is it ham, spam? {not a placeholder}\n\nhello"),
        assistant("ham"),
    )


def test_int_labels_are_named_through_label_names(error_of):
    cfg = config(label_names=["ham", "spam"])
    assert to_example(row(text="x", label=1), "classification", cfg, ["ham", "spam"]).label == "spam"
    assert to_example(row(text="x", label="0"), "classification", cfg, ["ham", "spam"]).label == "ham"
    assert error_of(lambda: to_example(row(2, text="x", label=2), "classification", cfg, ["ham", "spam"])) == (
        "d.jsonl:2: label 2 has no name: data.label_names has 2 names (indices 0..1)"
    )
    assert error_of(lambda: to_example(row(2, text="x", label="eggs"), "classification", cfg, ["ham", "spam"])) == (
        "d.jsonl:2: label 'eggs' is not one of data.label_names: ham, spam"
    )


def test_int_labels_without_names_become_their_digits():
    examples, fmt, labels = convert_rows({"train": [row(1, text="a", label=10), row(2, text="b", label=2)]}, config())
    assert (fmt, labels) == ("classification", ["2", "10"])
    assert [e.label for e in examples["train"]] == ["10", "2"]
    first_prompt = examples["train"][0].messages[0]["content"]
    assert first_prompt == "Classify the following text. Answer with one of: 2, 10.\n\na"


def test_column_mapping_reads_our_fields_from_their_keys():
    cfg = config(columns={"text": "sms", "label": "label_text"})
    data = row(text="ignored", sms="hi there", label=0, label_text="ham")
    example = to_example(data, "classification", cfg, ["ham", "spam"])
    assert example.messages[-2]["content"].endswith("\n\nhi there")
    assert example.label == "ham"


def test_bad_rows_name_the_key_and_the_keys_the_row_has(error_of):
    assert error_of(lambda: to_example(row(5, instruction="i", response="r"), "alpaca", config(), None)) == (
        "d.jsonl:5: missing key 'output' for format alpaca; the row has keys: instruction, response "
        "(map your key with data.columns, e.g. {output: your_key})"
    )
    cfg = config(columns={"label": "category"})
    assert error_of(lambda: to_example(row(6, text="t", label=1), "classification", cfg, ["a"])) == (
        "d.jsonl:6: missing key 'category' (data.columns maps `label` to it) for format classification; "
        "the row has keys: text, label (the row has tunesmith's own key 'label': drop the mapping for this file "
        "(as one of data.sources: columns: {label: label}))"
    )
    assert error_of(lambda: to_example(row(7, text="t", kind=1), "classification", cfg, ["a"])) == (
        "d.jsonl:7: missing key 'category' (data.columns maps `label` to it) for format classification; "
        "the row has keys: text, kind"
    )
    assert error_of(lambda: to_example(row(7, text="t", label=None), "classification", config(), ["a"])) == (
        "d.jsonl:7: key 'label' is null (format classification)"
    )
    assert error_of(lambda: to_example(row(8, text="  ", label="a"), "classification", config(), ["a"])) == (
        "d.jsonl:8: key 'text' is empty (format classification)"
    )
    assert error_of(lambda: to_example(row(9, text=["t"], label="a"), "classification", config(), ["a"])) == (
        "d.jsonl:9: key 'text' must be a string, got list ['t']"
    )
    long_list = list(range(100))
    assert error_of(lambda: to_example(row(9, text=long_list, label="a"), "classification", config(), ["a"])) == (
        "d.jsonl:9: key 'text' must be a string, got list " + repr(long_list)[:57] + "..."
    )


def test_regression_example_and_compact_numbers(error_of):
    example = to_example(row(text="great film", score=3.8), "regression", config(), None)
    assert example.messages == (
        user("Rate the following text. Answer with a number.\n\ngreat film"),
        assistant("3.8"),
    )
    assert example.target == 3.8
    pair = to_example(row(sentence1="A cat.", sentence2="A dog.", score=4.0), "regression", config(), None)
    assert pair.messages[0]["content"].endswith("\n\nSentence 1: A cat.\nSentence 2: A dog.")
    assert (pair.reference, pair.target) == ("4", 4.0)
    assert to_example(row(text="t", label="2.25"), "regression", config(), None).target == 2.25
    assert error_of(lambda: to_example(row(4, text="t", score="high"), "regression", config(), None)) == (
        "d.jsonl:4: target 'score' must be a number, got 'high'"
    )


def test_alpaca_with_and_without_input():
    with_input = to_example(row(instruction="Translate.", input="Hello", output="Hallo"), "alpaca", config(), None)
    assert with_input.messages == (user("Translate.\n\nHello"), assistant("Hallo"))
    for blank in ({"input": ""}, {"input": None}, {}):
        plain = to_example(row(instruction="Say hi.", output="Hi!", **blank), "alpaca", config(), None)
        assert plain.messages == (user("Say hi."), assistant("Hi!"))


def test_prompt_completion_and_per_row_system_field():
    example = to_example(row(prompt="2+2?", completion="4", system="You are a calculator."), "prompt_completion",
                         config(system_prompt="ignored: the row has its own"), None)
    assert example.messages == (
        {"role": "system", "content": "You are a calculator."}, user("2+2?"), assistant("4"),
    )


def test_messages_multi_turn_is_kept_and_gets_the_system_prompt():
    turns = [user("Hi"), assistant("Hello!"), user("Name a color."), assistant("Blue.")]
    example = to_example(row(messages=turns), "messages", config(system_prompt="Be kind."), None)
    assert example.messages == ({"role": "system", "content": "Be kind."}, *turns)
    assert example.prompt_messages == [{"role": "system", "content": "Be kind."}, *turns[:3]]
    own_system = [{"role": "system", "content": "Mine."}, *turns]
    assert to_example(row(messages=own_system), "messages", config(system_prompt="Be kind."), None).messages == (
        tuple(own_system)
    )


def test_bad_messages(error_of):
    ends_with_user = [user("Hi"), assistant("Hello!"), user("Bye")]
    assert error_of(lambda: to_example(row(2, messages=ends_with_user), "messages", config(), None)) == (
        "d.jsonl:2: conversation ends with a user turn; it must end with the assistant turn to learn "
        "(drop the trailing turn or add the assistant reply)"
    )
    sharegpt = [{"from": "human", "value": "Hi"}]
    assert error_of(lambda: to_example(row(3, messages=sharegpt), "messages", config(), None)) == (
        "d.jsonl:3: messages[0] has role None; allowed roles: system, user, assistant, tool (its keys: from, value)"
    )
    assert error_of(lambda: to_example(row(4, messages="Hi"), "messages", config(), None)) == (
        "d.jsonl:4: key 'messages' must be a non-empty list of {role, content} objects, got 'Hi'"
    )
    tool = [user("Hi"), {"role": "tool", "content": "x"}, assistant("ok")]  # a result with no call before it
    assert error_of(lambda: to_example(row(5, messages=tool), "messages", config(), None)) == (
        "d.jsonl:5: messages[1] is a tool result with no assistant tool call before it (put the assistant turn "
        "whose tool_calls it answers before it)"
    )


def test_text_format_learns_all_of_the_text(tiny_tokenizer):
    example = to_example(row(text="The quick brown fox."), "text", config(), None)
    assert example.messages == (user(""), assistant("The quick brown fox."))
    item = tokenize_example(example, tiny_tokenizer, max_length=512)
    supervised = [label for label in item.labels if label != IGNORE_INDEX]
    expected = tiny_tokenizer("The quick brown fox.", add_special_tokens=False)["input_ids"]
    assert supervised == expected + [tiny_tokenizer.eos_token_id]


def chat_row(**data) -> Row:
    return Row("d.jsonl", 7, data)


def convert(fmt: str, **data) -> Example:
    return to_example(chat_row(**data), fmt, DataConfig(path="d.jsonl"), None)


def test_sharegpt_is_detected_and_maps_speakers_to_roles():
    data = {"system": "Be kind.", "conversations": [
        {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"},
        {"from": "user", "value": "Bye"}, {"from": "model", "value": "Bye!"},
    ]}
    assert detect_format(chat_row(**data), {}) == "sharegpt"
    assert convert("sharegpt", **data).messages == (
        {"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Bye!"},
    )


def test_sharegpt_reads_role_content_turns_and_a_system_turn():
    turns = [{"from": "system", "value": "S"}, {"role": "user", "content": "U"}, {"from": "assistant", "value": "A"}]
    assert [m["role"] for m in convert("sharegpt", conversations=turns).messages] == ["system", "user", "assistant"]


def test_sharegpt_column_mapping():
    config = DataConfig(path="d.jsonl", columns={"conversations": "dialog"})
    data = {"dialog": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]}
    assert detect_format(chat_row(**data), config.columns) == "sharegpt"
    assert to_example(chat_row(**data), "sharegpt", config, None).reference == "Yo"


@pytest.mark.parametrize(("turns", "problem"), [
    ([{"from": "bot", "value": "x"}], "conversations[0] has from 'bot'; allowed: human, user, gpt"),
    ([{"from": "human", "value": 3}], "conversations[0].value must be a string, got int"),
    ([{"from": "human", "value": "x"}], "conversation ends with a user turn"),
    ("hello", "key 'conversations' must be a non-empty list of {from, value} objects"),
])
def test_bad_sharegpt_rows(turns, problem):
    with pytest.raises(DataError, match="d.jsonl:7: ") as caught:
        convert("sharegpt", conversations=turns)
    assert problem in caught.value.problem


def openai_row(*weights):
    messages = [{"role": "system", "content": "Be brief."}]
    for index, weight in enumerate(weights):
        messages.append({"role": "user", "content": f"question {index}"})
        reply = {"role": "assistant", "content": f"answer {index}"}
        if weight is not None:
            reply["weight"] = weight
        messages.append(reply)
    return messages


def test_openai_weight_zero_is_kept_only_when_zero():
    messages = convert("messages", messages=openai_row(0, 1, None)).messages
    assert [m.get("weight", "-") for m in messages if m["role"] == "assistant"] == [0, "-", "-"]
    assert all(set(m) <= {"role", "content", "weight"} for m in messages)


def test_every_assistant_turn_is_learned_except_weight_zero(tiny_tokenizer):
    example = convert("messages", messages=openai_row(1, 0, 1))
    item = tokenize_example(example, tiny_tokenizer, max_length=1024)
    supervised = [token for token, label in zip(item.input_ids, item.labels) if label != IGNORE_INDEX]
    eos = tiny_tokenizer.eos_token_id
    first, third = encode_texts(tiny_tokenizer, ["answer 0", "answer 2"])
    assert supervised == [*first, eos, *third, eos]
    assert "answer 1" in tiny_tokenizer.decode(item.input_ids)  # weight 0: context, still in the input


@pytest.mark.parametrize(("messages", "problem"), [
    (openai_row(1, 0), "the last turn of 'messages' has weight 0"),
    (openai_row(2), "messages[2].weight must be 0 or 1, got 2"),
    (openai_row(True), "messages[2].weight must be 0 or 1, got True"),
    (openai_row(0.5), "messages[2].weight must be 0 or 1, got 0.5"),
    ([{"role": "user", "content": "q", "weight": 1}, {"role": "assistant", "content": "a"}],
     "messages[0] is a user turn with a weight"),
])
def test_bad_weights_name_the_row(messages, problem):
    with pytest.raises(DataError, match="d.jsonl:7: ") as caught:
        convert("messages", messages=messages)
    assert problem in caught.value.problem


def test_openai_weights_from_a_file(tmp_path):
    path = tmp_path / "openai.jsonl"
    path.write_text("".join(json.dumps({"messages": openai_row(0, 1)}) + "\n" for _ in range(10)), encoding="utf-8")
    splits = load_splits(DataConfig(path=str(path), split={"validation": 0.1, "test": 0.1}))
    assert splits.format == "messages" and len(splits.train) == 8
    assert splits.train[0].messages[2] == {"role": "assistant", "content": "answer 0", "weight": 0}


def test_convert_rows_reports_each_bad_row_once_and_converts_the_rest(tmp_path):
    path = tmp_path / "d.jsonl"
    lines = [
        {"note": "no text here"},  # the format cannot be told from this row: detected from the next one
        {"text": "good one", "label": "spam"},
        {"text": "", "label": 3.5},  # a bad label and an empty text: one report (the label, found first)
        {"text": "fine", "label": "ham"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    errors: list[DataError] = []
    examples, fmt, labels = convert_rows({"train": read_rows(path)}, DataConfig(path=str(path)), errors.append)
    assert fmt == "classification" and labels == ["ham", "spam"]
    assert [e.location for e in examples["train"]] == [f"{path}:2", f"{path}:4"]
    assert [e.line for e in errors] == [1, 3]
    assert "label 'label' must be a string or an integer" in errors[1].problem
    with pytest.raises(DataError, match=r"d\.jsonl:1: cannot detect the data format"):
        convert_rows({"train": read_rows(path)}, DataConfig(path=str(path)))


def test_convert_rows_raises_when_no_row_tells_the_format(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"x": 1}\n{"y": 2}\n', encoding="utf-8")
    with pytest.raises(DataError, match="cannot detect the data format"):
        convert_rows({"train": read_rows(path)}, DataConfig(path=str(path)), on_error=lambda error: None)


def test_a_reply_needs_a_user_turn_before_it(error_of):
    assistant_first = [{"role": "system", "content": "S"}, assistant("Hello!"), user("Hi"), assistant("Yes?")]
    assert error_of(lambda: to_example(row(6, messages=assistant_first), "messages", config(), None)) == (
        "d.jsonl:6: messages[1] is an assistant turn with no user turn before it (a reply needs a prompt: add the "
        "user turn it answers, or use data.format: text to learn plain text)"
    )
    only_reply = [{"from": "gpt", "value": "Hello!"}]
    assert "conversations[0] is an assistant turn with no user turn before it" in error_of(
        lambda: to_example(row(7, conversations=only_reply), "sharegpt", config(), None))
    # the text format's empty user turn is what that format is: allowed
    assert to_example(row(text="Plain text."), "text", config(), None).messages[0] == user("")


def test_every_row_format_has_a_converter():
    assert list(CONVERTERS) == list(get_args(RowFormat))


def test_row_text_is_the_user_turn_without_the_instruction():
    for cfg in (config(), config(instruction="Is it {labels}?"), config(instruction="")):
        example = to_example(row(text="WIN a prize!", label="spam"), "classification", cfg, ["ham", "spam"])
        turn = example.messages[0]["content"]
        assert text_of_user_turn(turn, "classification", cfg, ["ham", "spam"]) == "WIN a prize!"
    rated = to_example(row(text="great film", score=3.8), "regression", config(), None)
    assert text_of_user_turn(rated.messages[0]["content"], "regression", config(), None) == "great film"
    assert text_of_user_turn("Translate: hi", "prompt_completion", config(), None) == "Translate: hi"


# ---- preference pairs --------------------------------------------------------------------------------------------

CHOSEN, REJECTED = assistant("Blue."), assistant("I cannot say.")


def test_a_pair_of_strings_ends_with_the_chosen_answer_and_keeps_the_rejected_one():
    example = to_example(row(4, prompt="Name a colour.", chosen="Blue.", rejected="I cannot say.", system="Be brief."),
                         "preference", config(), None)
    assert example == Example(messages=({"role": "system", "content": "Be brief."}, user("Name a colour."), CHOSEN),
                              location="d.jsonl:4", rejected=REJECTED)


@pytest.mark.parametrize("data", [
    {"prompt": [user("Name a colour.")], "chosen": [CHOSEN], "rejected": [REJECTED]},  # TRL conversational
    {"prompt": "Name a colour.", "chosen": CHOSEN, "rejected": {"content": "I cannot say."}},  # message objects
    {"chosen": [user("Name a colour."), CHOSEN], "rejected": [user("Name a colour."), REJECTED]},  # implicit prompt
])
def test_trl_shapes_read_as_the_same_pair(data):
    example = to_example(row(**data), detect_format(row(**data), {}), config(), None)
    assert example.messages == (user("Name a colour."), CHOSEN) and example.rejected == REJECTED


def test_pair_columns_are_mapped_and_detected_before_prompt_completion():
    columns = {"prompt": "question", "chosen": "good", "rejected": "bad"}
    mapped = row(question="Name a colour.", good="Blue.", bad="I cannot say.", completion="unused")
    assert detect_format(mapped, columns) == "preference"
    assert detect_format(row(prompt="p", completion="c", chosen="a", rejected="b"), {}) == "preference"
    example = to_example(mapped, "preference", config(columns=columns), None)
    assert example.messages[-1] == CHOSEN and example.rejected == REJECTED


def test_a_multi_turn_prompt_keeps_its_turns_and_an_empty_answer_is_read():
    prompt = [{"role": "system", "content": "S"}, user("Hi"), assistant("Hello!"), user("Name a colour.")]
    example = to_example(row(prompt=prompt, chosen="Blue.", rejected=" "), "preference", config(), None)
    assert example.messages == (*prompt, CHOSEN) and example.rejected == assistant(" ")


@pytest.mark.parametrize(("data", "message"), [
    ({"prompt": "Name a colour.", "chosen": "Blue."},
     "d.jsonl:9: missing key 'rejected' for format preference; the row has keys: prompt, chosen (map your key with "
     "data.columns, e.g. {rejected: your_key})"),
    ({"prompt": " ", "chosen": "a", "rejected": "b"}, "d.jsonl:9: key 'prompt' is empty (format preference)"),
    ({"prompt": 3, "chosen": "a", "rejected": "b"},
     "d.jsonl:9: key 'prompt' must be a string or a non-empty list of {role, content} objects, got int 3"),
    ({"prompt": [user("Hi"), assistant("Yes")], "chosen": "a", "rejected": "b"},
     "d.jsonl:9: key 'prompt' ends with an assistant turn; a prompt ends before the answers (put the answers in "
     "chosen and rejected, not in the prompt)"),
    ({"prompt": "Hi", "chosen": [CHOSEN, CHOSEN], "rejected": "b"},
     "d.jsonl:9: key 'chosen' must hold one assistant message, got a list of 2 (the turns before the answer go in "
     "prompt)"),
    ({"prompt": "Hi", "chosen": "a", "rejected": [user("b")]},
     "d.jsonl:9: rejected[0] has role 'user'; an answer is an assistant turn"),
    ({"prompt": "Hi", "chosen": "a", "rejected": 7}, "d.jsonl:9: rejected must be a string or an assistant message, "
     "got int 7"),
    ({"prompt": "Hi", "chosen": {"role": "assistant", "content": None}, "rejected": "b"},
     "d.jsonl:9: chosen.content must be a string, got NoneType"),
    ({"chosen": [user("Hi"), CHOSEN], "rejected": [user("Hello"), REJECTED]},
     "d.jsonl:9: 'chosen' and 'rejected' differ before their last turns; the two answers of a pair reply to one "
     "prompt (give the prompt as its own key)"),
])
def test_a_bad_pair_is_a_data_error_naming_file_and_line(error_of, data, message):
    assert error_of(lambda: to_example(row(9, **data), "preference", config(), None)) == message
