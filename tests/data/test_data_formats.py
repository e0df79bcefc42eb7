"""Rows → Examples: format detection, column mapping, label handling, and the exact conversation of each format."""

from __future__ import annotations

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.formats import convert_rows, detect_format, format_number, sort_labels, to_example
from tunesmith.data.readers import Row
from tunesmith.data.tokenize import IGNORE_INDEX, tokenize_example
from tunesmith.errors import DataError


def row(line: int = 1, **data) -> Row:
    return Row("d.jsonl", line, data)


def config(**fields) -> DataConfig:
    return DataConfig(path="d.jsonl", **fields)


def user(content: str) -> dict:
    return {"role": "user", "content": content}


def assistant(content: str) -> dict:
    return {"role": "assistant", "content": content}


def error_of(call) -> str:
    with pytest.raises(DataError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(
    ("data", "columns", "expected"),
    [
        ({"messages": [], "id": 1}, {}, "messages"),
        ({"instruction": "i", "input": "", "output": "o"}, {}, "alpaca"),
        ({"prompt": "p", "completion": "c"}, {}, "prompt_completion"),
        ({"text": "t", "label": 1, "label_text": "spam"}, {}, "classification"),
        ({"text": "t", "label": "spam"}, {}, "classification"),
        ({"text": "t", "label": "2"}, {}, "classification"),
        ({"sentence": "t", "label": 0}, {}, "classification"),
        ({"text": "t", "label": 4.0}, {}, "regression"),
        ({"text": "t", "label": "3.8"}, {}, "regression"),
        ({"text": "t", "score": 3}, {}, "regression"),
        ({"text": "t", "target": 0.5}, {}, "regression"),
        ({"sentence1": "a", "sentence2": "b", "score": 5.0}, {}, "regression"),
        ({"text": "t", "id": 7}, {}, "text"),
        ({"sms": "t", "category": "spam"}, {"text": "sms", "label": "category"}, "classification"),
        ({"en": "hi", "de": "hallo"}, {"prompt": "en", "completion": "de"}, "prompt_completion"),
        ({"conv": []}, {"messages": "conv"}, "messages"),
        ({"text": "t", "rating": 2}, {"target": "rating"}, "regression"),
    ],
)
def test_detect_format(data, columns, expected):
    assert detect_format(row(**data), columns) == expected


def test_detect_format_fails_with_the_keys_it_saw():
    assert error_of(lambda: detect_format(row(en="hi", de="hallo"), {})) == (
        "d.jsonl:1: cannot detect the data format from the keys: en, de (set data.format to one of alpaca, "
        "messages, sharegpt, prompt_completion, classification, regression, text, or map your keys with data.columns)"
    )


def test_classification_example_is_exactly_as_specified():
    example = to_example(row(3, text="WIN a prize!", label="spam"), "classification", config(), ["ham", "spam"])
    assert example.messages == (
        user("Classify the following text. Answer with one of: ham, spam.\n\nWIN a prize!"),
        assistant("spam"),
    )
    assert (example.label, example.target, example.source) == ("spam", None, "d.jsonl:3")


def test_classification_with_system_prompt_and_custom_instruction():
    cfg = config(system_prompt="Be brief.", instruction="Is it {labels}? {not a placeholder}")
    example = to_example(row(text="hello", label="ham"), "classification", cfg, ["ham", "spam"])
    assert example.messages == (
        {"role": "system", "content": "Be brief."},
        user("Is it ham, spam? {not a placeholder}\n\nhello"),
        assistant("ham"),
    )


def test_int_labels_are_named_through_label_names():
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


def test_bad_rows_name_the_key_and_the_keys_the_row_has():
    assert error_of(lambda: to_example(row(5, instruction="i", response="r"), "alpaca", config(), None)) == (
        "d.jsonl:5: missing key 'output' for format alpaca; the row has keys: instruction, response "
        "(map your key with data.columns, e.g. {output: your_key})"
    )
    cfg = config(columns={"label": "category"})
    assert error_of(lambda: to_example(row(6, text="t", label=1), "classification", cfg, ["a"])) == (
        "d.jsonl:6: missing key 'category' (data.columns maps `label` to it) for format classification; "
        "the row has keys: text, label"
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


def test_regression_example_and_compact_numbers():
    example = to_example(row(text="great film", score=3.8), "regression", config(), None)
    assert example.messages == (
        user("Rate the following text. Answer with a number.\n\ngreat film"),
        assistant("3.8"),
    )
    assert example.target == 3.8
    pair = to_example(row(sentence1="A cat.", sentence2="A dog.", score=4.0), "regression", config(), None)
    assert pair.messages[0]["content"].endswith("\n\nSentence 1: A cat.\nSentence 2: A dog.")
    assert (pair.reference, pair.target) == ("4", 4.0)
    numbers = (3.8, 4.0, 0.1 + 0.2, -2.5, 1234.5678)
    assert [format_number(x) for x in numbers] == ["3.8", "4", "0.3", "-2.5", "1234.57"]
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


def test_bad_messages():
    ends_with_user = [user("Hi"), assistant("Hello!"), user("Bye")]
    assert error_of(lambda: to_example(row(2, messages=ends_with_user), "messages", config(), None)) == (
        "d.jsonl:2: conversation ends with a user turn; it must end with the assistant turn to learn "
        "(drop the trailing turn or add the assistant reply)"
    )
    sharegpt = [{"from": "human", "value": "Hi"}]
    assert error_of(lambda: to_example(row(3, messages=sharegpt), "messages", config(), None)) == (
        "d.jsonl:3: messages[0] has role None; allowed roles: system, user, assistant (its keys: from, value)"
    )
    assert error_of(lambda: to_example(row(4, messages="Hi"), "messages", config(), None)) == (
        "d.jsonl:4: key 'messages' must be a non-empty list of {role, content} objects, got 'Hi'"
    )
    tool = [user("Hi"), {"role": "tool", "content": "x"}, assistant("ok")]
    assert error_of(lambda: to_example(row(5, messages=tool), "messages", config(), None)).startswith(
        "d.jsonl:5: messages[1] has role 'tool'; allowed roles: system, user, assistant"
    )


def test_text_format_learns_all_of_the_text(tiny_tokenizer):
    example = to_example(row(text="The quick brown fox."), "text", config(), None)
    assert example.messages == (user(""), assistant("The quick brown fox."))
    item = tokenize_example(example, tiny_tokenizer, max_length=512)
    supervised = [label for label in item.labels if label != IGNORE_INDEX]
    expected = tiny_tokenizer("The quick brown fox.", add_special_tokens=False)["input_ids"]
    assert supervised == expected + [tiny_tokenizer.eos_token_id]


def test_sort_labels():
    assert sort_labels({"10", "2", "-1"}) == ["-1", "2", "10"]
    assert sort_labels({"spam", "ham", "10"}) == ["10", "ham", "spam"]
