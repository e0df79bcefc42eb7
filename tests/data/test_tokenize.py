from tunesmith.data.example import Example
from tunesmith.data.tokenize import IGNORE_INDEX, prompt_token_ids, tokenize_example, tokenize_examples


def conversation(*turns):
    roles = ["user", "assistant"] * len(turns)
    return Example(messages=tuple({"role": r, "content": c} for r, c in zip(roles, turns)), source="t.jsonl:1")


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
    expected_ids = ids(tok, prefix1) + ids(tok, "ham") + [eos] + ids(tok, prefix2) + ids(tok, "spam") + [eos] + ids(tok, "\n")
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
