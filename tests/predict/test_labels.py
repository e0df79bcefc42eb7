"""Label scoring with a shared prompt cache equals the naive full-sequence computation; the label tokens are
exactly what training supervises."""

from __future__ import annotations

import torch

from tunesmith.data.example import Example
from tunesmith.data.tokenize import IGNORE_INDEX, prompt_token_ids, tokenize_example
from tunesmith.predict.labels import label_token_ids, predict_labels, score_labels


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


def test_label_tokens_are_exactly_what_training_supervises(tiny_tokenizer, scoring_case):
    prompts, labels = scoring_case
    eos = tiny_tokenizer.eos_token_id
    for label in labels:
        example = Example(messages=(*prompts[0], {"role": "assistant", "content": label}), location="t:1")
        supervised = [t for t in tokenize_example(example, tiny_tokenizer, 512).labels if t != IGNORE_INDEX]
        assert label_token_ids(tiny_tokenizer, prompts[0], label) == supervised
        assert supervised == tiny_tokenizer(label, add_special_tokens=False)["input_ids"] + [eos]


def test_label_tokens_of_a_multi_turn_prompt_cover_only_the_final_reply(tiny_tokenizer, scoring_case):
    prompts = scoring_case.prompts
    eos = tiny_tokenizer.eos_token_id
    expected = tiny_tokenizer("spam", add_special_tokens=False)["input_ids"] + [eos]
    assert label_token_ids(tiny_tokenizer, prompts[3], "spam") == expected


def test_cached_scores_equal_naive_full_sequence_scores(chatty_model, tiny_tokenizer, scoring_case):
    prompts, labels = scoring_case
    scores = score_labels(chatty_model, tiny_tokenizer, prompts, labels, batch_size=2)
    expected = naive_scores(chatty_model, tiny_tokenizer, prompts, labels)
    assert torch.allclose(torch.tensor(scores), torch.tensor(expected), atol=1e-4, rtol=0)
    # scores are far apart, so a wrong position or a stale cache would show
    assert max(abs(a - b) for row in scores for a, b in zip(row, row[1:])) > 1.0
    assert tiny_tokenizer.padding_side == "right"


def test_cached_scores_equal_naive_scores_for_a_peft_model(chatty_model, tiny_tokenizer, scoring_case):
    prompts, labels = scoring_case
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(
        chatty_model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    ).eval()
    scores = score_labels(peft_model, tiny_tokenizer, prompts, labels, batch_size=3)
    expected = naive_scores(peft_model, tiny_tokenizer, prompts, labels)
    assert torch.allclose(torch.tensor(scores), torch.tensor(expected), atol=1e-4, rtol=0)
    with peft_model.disable_adapter():  # the adapter really changes the scores: this is not the plain case again
        unadapted = naive_scores(peft_model, tiny_tokenizer, prompts[:1], labels)
    assert not torch.allclose(torch.tensor(unadapted[0]), torch.tensor(scores[0]), atol=1e-3)


def test_predict_labels_takes_the_argmax_and_the_first_on_ties():
    labels = ["ham", "spam", "other"]
    assert predict_labels([[-3.0, -1.0, -2.0], [-0.5, -4.0, -9.0], [-1.0, -7.0, -1.0]], labels) == [
        "spam", "ham", "ham",
    ]
