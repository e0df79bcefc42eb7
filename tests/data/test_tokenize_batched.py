"""Batched tokenization gives exactly the ids and labels of the row-at-a-time reference, on real data."""

import pytest

from tunesmith.config.schema import DataConfig, ModelConfig
from tunesmith.data.example import Example
from tunesmith.data.splits import load_splits
from tunesmith.data.tokenize import (
    IGNORE_INDEX,
    PARALLEL_MIN_ROWS,
    tokenize_batch,
    tokenize_example,
    tokenize_examples,
    tokenize_to_dataset,
)


def reference_tokenize(example, tokenizer, max_length, loss_on="assistant"):
    """The row-at-a-time tokenization tunesmith used before batching (three template renders per reply)."""
    messages = list(example.messages)
    segments, rendered = [], ""
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = tokenizer.apply_chat_template(messages[:index], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(messages[: index + 1], tokenize=False)
        segments += [(prefix[len(rendered):], False), (full[len(prefix):], True)]
        rendered = full
    tail = tokenizer.apply_chat_template(messages, tokenize=False)
    if len(tail) > len(rendered) and tail.startswith(rendered):
        segments.append((tail[len(rendered):], False))
    eos, input_ids, labels = tokenizer.eos_token_id, [], []
    for text, is_reply in (s for s in segments if s[0]):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if not is_reply:
            input_ids += ids
            labels += ids if loss_on == "all" else [IGNORE_INDEX] * len(ids)
            continue
        if eos in ids:
            end = ids.index(eos) + 1
        else:
            ids, end = ids + [eos], len(ids) + 1
        input_ids += ids
        labels += ids[:end] + (ids[end:] if loss_on == "all" else [IGNORE_INDEX] * (len(ids) - end))
    return input_ids[:max_length], labels[:max_length]


@pytest.fixture(scope="module")
def real_tokenizer():
    from tunesmith.models import load_tokenizer

    return load_tokenizer(ModelConfig())


def _examples(path, **settings):
    return load_splits(DataConfig(train=str(path), split={"validation": 0, "test": 0}, **settings)).train


@pytest.mark.parametrize("max_length", [512, 64])
def test_batched_equals_reference_on_alpaca_and_sms(real_tokenizer, shared_data, max_length):
    examples = _examples(shared_data / "alpaca_2k.jsonl")
    examples += _examples(shared_data / "sms_spam_train.jsonl", format="classification",
                          columns={"label": "label_text"})[:1500]
    examples += _examples(shared_data / "chat_fastchat_identity.jsonl")[:200]  # multi-turn
    rows, stats = tokenize_examples(examples, real_tokenizer, max_length, num_proc=1)
    mismatches = [example.source for example, row in zip(examples, rows)
                  if (row.input_ids, row.labels) != reference_tokenize(example, real_tokenizer, max_length)]
    assert mismatches == []
    assert stats.rows == len(examples)
    if max_length == 64:
        assert stats.truncated_rows > 100


def test_loss_on_all_matches_reference(real_tokenizer, shared_data):
    examples = _examples(shared_data / "alpaca_2k.jsonl")[:100]
    rows = tokenize_batch(examples, real_tokenizer, 512, loss_on="all")
    assert [(r.input_ids, r.labels) for r in rows] == [reference_tokenize(e, real_tokenizer, 512, "all")
                                                       for e in examples]


def test_parallel_path_equals_in_process(tiny_tokenizer):
    examples = [Example(messages=({"role": "user", "content": f"message {i}"},
                                  {"role": "assistant", "content": "spam" if i % 3 else "ham"}),
                        source=f"t.jsonl:{i + 1}") for i in range(PARALLEL_MIN_ROWS)]
    parallel, parallel_stats = tokenize_examples(examples, tiny_tokenizer, 32, num_proc=2)
    serial, serial_stats = tokenize_examples(examples, tiny_tokenizer, 32, num_proc=1)
    assert [(r.input_ids, r.labels, r.source) for r in parallel] == [(r.input_ids, r.labels, r.source)
                                                                      for r in serial]
    assert parallel_stats == serial_stats
    dataset = tokenize_to_dataset(examples[:10], tiny_tokenizer, 32)
    assert dataset["length"][:10] == [len(r.input_ids) for r in serial[:10]]


def test_weight_zero_assistant_turn_is_context(tiny_tokenizer):
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "spam", "weight": 0},
             {"role": "user", "content": "again"}, {"role": "assistant", "content": "ham"}]
    weighted = tokenize_example(Example(messages=tuple(turns), source="t:1"), tiny_tokenizer, 512)
    plain = tokenize_example(Example(messages=tuple({k: v for k, v in t.items() if k != "weight"} for t in turns),
                                     source="t:1"), tiny_tokenizer, 512)
    assert weighted.input_ids == plain.input_ids  # the turn is still there for the model to read
    supervised = [label for label in weighted.labels if label != IGNORE_INDEX]
    assert tiny_tokenizer.decode(supervised) == "ham<|im_end|>"
    assert tiny_tokenizer.decode([label for label in plain.labels if label != IGNORE_INDEX]) == \
        "spam<|im_end|>ham<|im_end|>"
