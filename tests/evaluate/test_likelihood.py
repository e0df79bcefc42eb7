"""The test loss by hand (token-weighted), and read off label scores equal to the loss pass."""

from __future__ import annotations

import math

import pytest
import torch

from tunesmith.data.example import Example
from tunesmith.data.tokenize import IGNORE_INDEX, tokenize_example
from tunesmith.evaluate.likelihood import loss_and_perplexity, loss_from_label_scores
from tunesmith.predict.labels import score_labels


def test_loss_is_token_weighted_cross_entropy_over_supervised_tokens(chatty_model, tiny_tokenizer, scoring_case):
    prompts = scoring_case.prompts
    examples = [
        Example(messages=(*prompts[1], {"role": "assistant", "content": "Yes, at noon."}), location="t:1"),
        Example(messages=(*prompts[2], {"role": "assistant", "content": "ham"}), location="t:2"),
        Example(messages=(*prompts[3], {"role": "assistant", "content": "spam spam"}), location="t:3"),
    ]
    # by hand: each row alone, -log p of every supervised token given everything before it
    nll, counts = [], []
    with torch.no_grad():
        for example in examples:
            item = tokenize_example(example, tiny_tokenizer, 512)
            logprobs = torch.log_softmax(chatty_model(input_ids=torch.tensor([item.input_ids])).logits[0], dim=-1)
            picked = [-float(logprobs[pos - 1, tok]) for pos, tok in enumerate(item.labels) if tok != IGNORE_INDEX]
            nll.append(sum(picked))
            counts.append(len(picked))
    expected = sum(nll) / sum(counts)
    assert len(set(counts)) > 1  # rows differ in length, so the mean of row means would differ
    assert abs(expected - sum(n / c for n, c in zip(nll, counts)) / len(counts)) > 1e-3

    for batch_size in (1, 2, 3):
        result = loss_and_perplexity(chatty_model, tiny_tokenizer, examples, max_length=512, batch_size=batch_size)
        assert result["loss"] == pytest.approx(expected, abs=1e-4)
        assert result["perplexity"] == pytest.approx(math.exp(result["loss"]))
        assert result["tokens"] == sum(counts)


def test_loss_skips_rows_whose_answer_was_truncated_away(chatty_model, tiny_tokenizer, scoring_case):
    prompts = scoring_case.prompts
    example = Example(messages=(*prompts[0], {"role": "assistant", "content": "spam"}), location="t:1")
    assert loss_and_perplexity(chatty_model, tiny_tokenizer, [example], max_length=8, batch_size=4) == {
        "loss": None, "perplexity": None, "tokens": 0,
    }


def test_loss_read_off_label_scores_equals_the_loss_pass(chatty_model, tiny_tokenizer, scoring_case):
    prompts, labels = scoring_case
    examples = [
        Example(messages=(*prompt, {"role": "assistant", "content": label}), location=f"t:{i}", label=label)
        for i, (prompt, label) in enumerate(zip(prompts[:3] + prompts[4:], ["spam", "ham", "Sci/Tech news", "ham"]))
    ]
    scores = score_labels(chatty_model, tiny_tokenizer, [e.prompt_messages for e in examples], labels, batch_size=2)
    derived = loss_from_label_scores(tiny_tokenizer, examples, labels, scores)
    direct = loss_and_perplexity(chatty_model, tiny_tokenizer, examples, max_length=512, batch_size=2)
    label_tokens = sum(len(tiny_tokenizer(e.reference, add_special_tokens=False)["input_ids"]) + 1 for e in examples)
    assert derived["tokens"] == direct["tokens"] == label_tokens  # each label's tokens plus its EOS
    assert derived["loss"] == pytest.approx(direct["loss"], abs=1e-4)
    assert derived["perplexity"] == pytest.approx(direct["perplexity"], rel=1e-4)


def test_loss_is_not_read_off_label_scores_when_they_do_not_cover_the_supervision(chatty_model, tiny_tokenizer,
                                                                                   scoring_case):
    prompts, labels = scoring_case
    multi_turn = Example(messages=(*prompts[3], {"role": "assistant", "content": "spam"}), location="t:1", label="spam")
    single = Example(messages=(*prompts[1], {"role": "assistant", "content": "ham"}), location="t:2", label="ham")
    scores = [[-1.0, -2.0, -3.0, -4.0]]
    # the earlier "ham" reply is supervised too
    assert loss_from_label_scores(tiny_tokenizer, [multi_turn], labels, scores) is None
    # the reply is not one of the scored labels
    assert loss_from_label_scores(tiny_tokenizer, [single], ["spam"], [[-1.0]]) is None
