"""Label scoring with a shared prompt cache equals the naive full-sequence computation; loss by hand."""

from __future__ import annotations

import math

import pytest
import torch

from tunesmith.data.example import Example
from tunesmith.data.tokenize import IGNORE_INDEX, prompt_token_ids, tokenize_example
from tunesmith.evaluate.likelihood import (
    label_token_ids,
    loss_and_perplexity,
    loss_from_label_scores,
    predict_labels,
    score_labels,
)

PROMPTS = [
    [{"role": "user", "content": "Classify: WINNER!! You have won a free prize, call now."}],
    [{"role": "user", "content": "Hey lunch?"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Are we still meeting tomorrow?"}],
    [{"role": "user", "content": "Is this spam?"}, {"role": "assistant", "content": "ham"},
     {"role": "user", "content": "And this one: free cash"}],
    [{"role": "user", "content": "a"}],
]
# Different token counts, and "spam" is a prefix of "spammy": the EOS in each completion tells them apart.
LABELS = ["ham", "spam", "spammy", "Sci/Tech news"]


def naive_scores(model, tokenizer, prompts, labels) -> list[list[float]]:
    """One forward per (prompt, label) over prompt + completion, no cache, no padding."""
    scores = []
    with torch.no_grad():
        for prompt in prompts:
            row = []
            for label in labels:
                context = prompt_token_ids(tokenizer, prompt)
                completion = label_token_ids(tokenizer, prompt, label)
                logits = model(input_ids=torch.tensor([context + completion])).logits[0]
                logprobs = torch.log_softmax(logits.float(), dim=-1)
                row.append(sum(
                    float(logprobs[len(context) - 1 + offset, token]) for offset, token in enumerate(completion)
                ))
            scores.append(row)
    return scores


def test_label_tokens_are_exactly_what_training_supervises(tiny_tokenizer):
    eos = tiny_tokenizer.eos_token_id
    for label in LABELS:
        example = Example(messages=(*PROMPTS[0], {"role": "assistant", "content": label}), location="t:1")
        supervised = [t for t in tokenize_example(example, tiny_tokenizer, 512).labels if t != IGNORE_INDEX]
        assert label_token_ids(tiny_tokenizer, PROMPTS[0], label) == supervised
        assert supervised == tiny_tokenizer(label, add_special_tokens=False)["input_ids"] + [eos]


def test_label_tokens_of_a_multi_turn_prompt_cover_only_the_final_reply(tiny_tokenizer):
    eos = tiny_tokenizer.eos_token_id
    expected = tiny_tokenizer("spam", add_special_tokens=False)["input_ids"] + [eos]
    assert label_token_ids(tiny_tokenizer, PROMPTS[3], "spam") == expected


def test_cached_scores_equal_naive_full_sequence_scores(chatty_model, tiny_tokenizer):
    scores = score_labels(chatty_model, tiny_tokenizer, PROMPTS, LABELS, batch_size=2)
    expected = naive_scores(chatty_model, tiny_tokenizer, PROMPTS, LABELS)
    assert torch.allclose(torch.tensor(scores), torch.tensor(expected), atol=1e-4, rtol=0)
    # scores are far apart, so a wrong position or a stale cache would show
    assert max(abs(a - b) for row in scores for a, b in zip(row, row[1:])) > 1.0
    assert tiny_tokenizer.padding_side == "right"


def test_cached_scores_equal_naive_scores_for_a_peft_model(chatty_model, tiny_tokenizer):
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(
        chatty_model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    ).eval()
    scores = score_labels(peft_model, tiny_tokenizer, PROMPTS, LABELS, batch_size=3)
    expected = naive_scores(peft_model, tiny_tokenizer, PROMPTS, LABELS)
    assert torch.allclose(torch.tensor(scores), torch.tensor(expected), atol=1e-4, rtol=0)
    with peft_model.disable_adapter():  # the adapter really changes the scores: this is not the plain case again
        unadapted = naive_scores(peft_model, tiny_tokenizer, PROMPTS[:1], LABELS)
    assert not torch.allclose(torch.tensor(unadapted[0]), torch.tensor(scores[0]), atol=1e-3)


def test_predict_labels_takes_the_argmax_and_the_first_on_ties():
    labels = ["ham", "spam", "other"]
    assert predict_labels([[-3.0, -1.0, -2.0], [-0.5, -4.0, -9.0], [-1.0, -7.0, -1.0]], labels) == [
        "spam", "ham", "ham",
    ]


def test_loss_is_token_weighted_cross_entropy_over_supervised_tokens(chatty_model, tiny_tokenizer):
    examples = [
        Example(messages=(*PROMPTS[1], {"role": "assistant", "content": "Yes, at noon."}), location="t:1"),
        Example(messages=(*PROMPTS[2], {"role": "assistant", "content": "ham"}), location="t:2"),
        Example(messages=(*PROMPTS[3], {"role": "assistant", "content": "spam spam"}), location="t:3"),
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


def test_loss_skips_rows_whose_answer_was_truncated_away(chatty_model, tiny_tokenizer):
    example = Example(messages=(*PROMPTS[0], {"role": "assistant", "content": "spam"}), location="t:1")
    assert loss_and_perplexity(chatty_model, tiny_tokenizer, [example], max_length=8, batch_size=4) == {
        "loss": None, "perplexity": None, "tokens": 0,
    }


def test_loss_read_off_label_scores_equals_the_loss_pass(chatty_model, tiny_tokenizer):
    examples = [
        Example(messages=(*prompt, {"role": "assistant", "content": label}), location=f"t:{i}", label=label)
        for i, (prompt, label) in enumerate(zip(PROMPTS[:3] + PROMPTS[4:], ["spam", "ham", "Sci/Tech news", "ham"]))
    ]
    scores = score_labels(chatty_model, tiny_tokenizer, [e.prompt_messages for e in examples], LABELS, batch_size=2)
    derived = loss_from_label_scores(tiny_tokenizer, examples, LABELS, scores)
    direct = loss_and_perplexity(chatty_model, tiny_tokenizer, examples, max_length=512, batch_size=2)
    label_tokens = sum(len(tiny_tokenizer(e.reference, add_special_tokens=False)["input_ids"]) + 1 for e in examples)
    assert derived["tokens"] == direct["tokens"] == label_tokens  # each label's tokens plus its EOS
    assert derived["loss"] == pytest.approx(direct["loss"], abs=1e-4)
    assert derived["perplexity"] == pytest.approx(direct["perplexity"], rel=1e-4)


def test_loss_is_not_read_off_label_scores_when_they_do_not_cover_the_supervision(chatty_model, tiny_tokenizer):
    multi_turn = Example(messages=(*PROMPTS[3], {"role": "assistant", "content": "spam"}), location="t:1", label="spam")
    single = Example(messages=(*PROMPTS[1], {"role": "assistant", "content": "ham"}), location="t:2", label="ham")
    scores = [[-1.0, -2.0, -3.0, -4.0]]
    # the earlier "ham" reply is supervised too
    assert loss_from_label_scores(tiny_tokenizer, [multi_turn], LABELS, scores) is None
    # the reply is not one of the scored labels
    assert loss_from_label_scores(tiny_tokenizer, [single], ["spam"], [[-1.0]]) is None
