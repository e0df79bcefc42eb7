"""Conversation → token ids and labels: assistant-only masks token by token, prompts as prefixes, truncation
counted, and batched tokenization equal to the row-at-a-time reference on real data."""

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.example import Example
from tunesmith.data.splits import load_splits
from tunesmith.data.tokenize import (
    IGNORE_INDEX,
    PARALLEL_MIN_ROWS,
    prompt_token_ids,
    tokenize_batch,
    tokenize_example,
    tokenize_examples,
    tokenize_to_dataset,
)


def conversation(*turns):
    roles = ["user", "assistant"] * len(turns)
    return Example(messages=tuple({"role": r, "content": c} for r, c in zip(roles, turns)), location="t.jsonl:1")


def ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_assistant_only_mask_token_by_token(tiny_tokenizer):
    tok = tiny_tokenizer
    example = conversation("hi there", "ham", "and now?", "spam")
    item = tokenize_example(example, tok, max_length=512)
    prefix1 = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nhi there<|im_end|>\n" \
              "<|im_start|>assistant\n"
    prefix2 = "\n<|im_start|>user\nand now?<|im_end|>\n<|im_start|>assistant\n"
    eos = tok.eos_token_id
    expected_ids = (ids(tok, prefix1) + ids(tok, "ham") + [eos] + ids(tok, prefix2) + ids(tok, "spam") + [eos]
                    + ids(tok, "\n"))
    expected_labels = (
        [IGNORE_INDEX] * len(ids(tok, prefix1)) + ids(tok, "ham") + [eos]
        + [IGNORE_INDEX] * len(ids(tok, prefix2)) + ids(tok, "spam") + [eos] + [IGNORE_INDEX]
    )
    assert item.input_ids == expected_ids
    assert item.labels == expected_labels
    assert tok.decode(item.input_ids) == tok.apply_chat_template(list(example.messages), tokenize=False)


def test_prompt_ids_are_a_prefix_of_training_ids(tiny_tokenizer):
    example = conversation("What is the capital of France?", "Paris.")
    item = tokenize_example(example, tiny_tokenizer, max_length=512)
    prompt = prompt_token_ids(tiny_tokenizer, example.prompt_messages)
    assert item.input_ids[: len(prompt)] == prompt
    assert all(label == IGNORE_INDEX for label in item.labels[: len(prompt)])
    assert item.labels[len(prompt)] != IGNORE_INDEX


def test_loss_on_all_tokens(tiny_tokenizer):
    item = tokenize_example(conversation("hi", "ham"), tiny_tokenizer, max_length=512, loss_on="all")
    assert item.labels == item.input_ids


def test_truncation_is_counted(tiny_tokenizer):
    long_answer = conversation("hi", "win a free prize now " * 20)
    short = conversation("hi", "ham")
    full = tokenize_example(long_answer, tiny_tokenizer, max_length=10_000)
    limit = len(full.input_ids) - 5
    rows, stats = tokenize_examples([long_answer, short], tiny_tokenizer, max_length=limit)
    assert len(rows[0].input_ids) == limit and rows[0].truncated
    # the 5 cut tokens are the EOS, the template's newline and 3 answer tokens: 4 of them supervised
    assert rows[0].supervised_lost == 4
    assert stats.rows == 2 and stats.truncated_rows == 1 and stats.supervised_tokens_lost == 4
    assert stats.rows_without_supervision == 0


def test_template_without_eos_gets_eos_appended(tiny_tokenizer):
    import copy

    plain = copy.deepcopy(tiny_tokenizer)  # the session fixture stays untouched
    plain.chat_template = (
        "{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}"
    )
    item = tokenize_example(conversation("hi", "ham"), plain, max_length=512)
    supervised = [label for label in item.labels if label != IGNORE_INDEX]
    assert supervised[-1] == plain.eos_token_id
    assert plain.decode(supervised[:-1]).startswith("ham")


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


def _examples(path, **settings):
    return load_splits(DataConfig(train=str(path), split={"validation": 0, "test": 0}, **settings)).train


@pytest.mark.parametrize("max_length", [512, 64])
def test_batched_equals_reference_on_alpaca_and_sms(default_tokenizer, shared_data, max_length):
    examples = _examples(shared_data / "alpaca_2k.jsonl")
    examples += _examples(shared_data / "sms_spam_train.jsonl", format="classification",
                          columns={"label": "label_text"})[:1500]
    examples += _examples(shared_data / "chat_fastchat_identity.jsonl")[:200]  # multi-turn
    rows, stats = tokenize_examples(examples, default_tokenizer, max_length, num_proc=1)
    mismatches = [example.location for example, row in zip(examples, rows)
                  if (row.input_ids, row.labels) != reference_tokenize(example, default_tokenizer, max_length)]
    assert mismatches == []
    assert stats.rows == len(examples)
    if max_length == 64:
        assert stats.truncated_rows > 100


def test_loss_on_all_matches_reference(default_tokenizer, shared_data):
    examples = _examples(shared_data / "alpaca_2k.jsonl")[:100]
    rows = tokenize_batch(examples, default_tokenizer, 512, loss_on="all")
    assert [(r.input_ids, r.labels) for r in rows] == [reference_tokenize(e, default_tokenizer, 512, "all")
                                                       for e in examples]


def test_parallel_path_equals_in_process(tiny_tokenizer):
    examples = [Example(messages=({"role": "user", "content": f"message {i}"},
                                  {"role": "assistant", "content": "spam" if i % 3 else "ham"}),
                        location=f"t.jsonl:{i + 1}") for i in range(PARALLEL_MIN_ROWS)]
    parallel, parallel_stats = tokenize_examples(examples, tiny_tokenizer, 32, num_proc=2)
    serial, serial_stats = tokenize_examples(examples, tiny_tokenizer, 32, num_proc=1)
    assert [(r.input_ids, r.labels, r.location) for r in parallel] == [(r.input_ids, r.labels, r.location)
                                                                      for r in serial]
    assert parallel_stats == serial_stats
    dataset = tokenize_to_dataset(examples[:10], tiny_tokenizer, 32)
    assert dataset["length"][:10] == [len(r.input_ids) for r in serial[:10]]


def test_weight_zero_assistant_turn_is_context(tiny_tokenizer):
    turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "spam", "weight": 0},
             {"role": "user", "content": "again"}, {"role": "assistant", "content": "ham"}]
    weighted = tokenize_example(Example(messages=tuple(turns), location="t:1"), tiny_tokenizer, 512)
    plain = tokenize_example(Example(messages=tuple({k: v for k, v in t.items() if k != "weight"} for t in turns),
                                     location="t:1"), tiny_tokenizer, 512)
    assert weighted.input_ids == plain.input_ids  # the turn is still there for the model to read
    supervised = [label for label in weighted.labels if label != IGNORE_INDEX]
    assert tiny_tokenizer.decode(supervised) == "ham<|im_end|>"
    assert tiny_tokenizer.decode([label for label in plain.labels if label != IGNORE_INDEX]) == \
        "spam<|im_end|>ham<|im_end|>"
