"""What a row holds: format detection, labels and targets, and the one format-and-labels inference every route
uses (strict and lenient, lists and streams)."""

from __future__ import annotations

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.fields import detect_format, infer_format_and_labels, pair_prompt_key, sort_labels, target_text
from tunesmith.data.rows import Row


def row(line: int = 1, **data) -> Row:
    return Row("d.jsonl", line, data)


def config(**fields) -> DataConfig:
    return DataConfig(path="d.jsonl", **fields)


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


def test_detect_format_fails_with_the_keys_it_saw(error_of):
    assert error_of(lambda: detect_format(row(en="hi", de="hallo"), {})) == (
        "d.jsonl:1: cannot detect the data format from the keys: en, de (set data.format to one of alpaca, "
        "messages, sharegpt, prompt_completion, classification, regression, text, preference, or map your keys with "
        "data.columns)"
    )


def test_sort_labels():
    assert sort_labels({"10", "2", "-1"}) == ["-1", "2", "10"]
    assert sort_labels({"spam", "ham", "10"}) == ["10", "ham", "spam"]


def test_target_text_is_compact():
    numbers = (3.8, 4.0, 0.1 + 0.2, -2.5, 1234.5678)
    assert [target_text(x) for x in numbers] == ["3.8", "4", "0.3", "-2.5", "1234.57"]


def test_inference_reads_a_stream_once():
    rows = [row(1, text="a", label="spam"), row(2, text="b", label="ham"), row(3, text="c", label="eggs")]
    consumed = []

    def stream():
        for item in rows:
            consumed.append(item.line)
            yield item

    assert infer_format_and_labels(stream(), config()) == ("classification", ["eggs", "ham", "spam"])
    assert consumed == [1, 2, 3]
    assert infer_format_and_labels(iter(rows), config(label_names=["spam", "ham", "eggs"])) == (
        "classification", ["spam", "ham", "eggs"])
    assert infer_format_and_labels(rows, config(format="text")) == ("text", None)


def test_inference_strict_raises_at_the_first_bad_row_lenient_passes_it_over(error_of):
    rows = [row(1, note="no format"), row(2, text="a", label="spam"), row(3, text="b", label=3.5),
            row(4, text="c", label="ham")]
    assert error_of(lambda: infer_format_and_labels(rows, config())).startswith(
        "d.jsonl:1: cannot detect the data format")
    assert infer_format_and_labels(rows, config(), lenient=True) == ("classification", ["ham", "spam"])
    assert error_of(lambda: infer_format_and_labels(rows[1:], config())).startswith(
        "d.jsonl:3: label 'label' must be a string or an integer")


def test_inference_without_a_detectable_row_names_the_first(error_of):
    assert error_of(lambda: infer_format_and_labels([row(1, x=1), row(2, y=2)], config(), lenient=True)).startswith(
        "d.jsonl:1: cannot detect the data format")


def test_pairs_of_one_prompt_share_a_key_whatever_its_shape():
    hi = [{"role": "user", "content": "Hi"}]
    key = pair_prompt_key(row(prompt="Hi", chosen="a", rejected="b"), {})
    assert pair_prompt_key(row(prompt=hi, chosen=[{"role": "assistant", "content": "c"}], rejected="d"), {}) == key
    assert pair_prompt_key(row(chosen=[*hi, {"role": "assistant", "content": "a"}], rejected=[]), {}) == key
    assert pair_prompt_key(row(question="Hi", chosen="a", rejected="b"), {"prompt": "question"}) == key
    assert pair_prompt_key(row(prompt="Hi", chosen="a", rejected="b", system="S"), {}) != key
    assert pair_prompt_key(row(prompt="Hi!", chosen="a", rejected="b"), {}) != key
