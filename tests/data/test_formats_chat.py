"""ShareGPT, OpenAI fine-tuning JSONL (`weight` per assistant turn) and multi-turn conversations."""

from __future__ import annotations

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.example import Example
from tunesmith.data.formats import detect_format, to_example
from tunesmith.data.readers import Row
from tunesmith.data.tokenize import IGNORE_INDEX, encode_texts, tokenize_example
from tunesmith.errors import DataError


def row(**data) -> Row:
    return Row("d.jsonl", 7, data)


def convert(fmt: str, **data) -> Example:
    return to_example(row(**data), fmt, DataConfig(path="d.jsonl"), None)


def test_sharegpt_is_detected_and_maps_speakers_to_roles():
    data = {"system": "Be kind.", "conversations": [
        {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"},
        {"from": "user", "value": "Bye"}, {"from": "model", "value": "Bye!"},
    ]}
    assert detect_format(row(**data), {}) == "sharegpt"
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
    assert detect_format(row(**data), config.columns) == "sharegpt"
    assert to_example(row(**data), "sharegpt", config, None).reference == "Yo"


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
    import json

    from tunesmith.data.splits import load_splits

    path = tmp_path / "openai.jsonl"
    path.write_text("".join(json.dumps({"messages": openai_row(0, 1)}) + "\n" for _ in range(10)), encoding="utf-8")
    splits = load_splits(DataConfig(path=str(path), split={"validation": 0.1, "test": 0.1}))
    assert splits.format == "messages" and len(splits.train) == 8
    assert splits.train[0].messages[2] == {"role": "assistant", "content": "answer 0", "weight": 0}
