"""Batched, left-padded generation gives exactly what one-prompt-at-a-time greedy decoding gives."""

from __future__ import annotations

import pytest
import torch

from tunesmith.data.tokenize import prompt_token_ids
from tunesmith.predict.generation import generate, generate_with_logprobs, length_sorted_batches

PROMPTS = [
    [{"role": "user", "content": "Hey lunch?"}],
    [{"role": "system", "content": "Be brief."},
     {"role": "user", "content": "The quick brown fox jumps over the lazy dog, then again and again."}],
    [{"role": "user", "content": "a"}],
    [{"role": "user", "content": "Classify the message as ham or spam: WINNER!! free prize"}],
]


def manual_greedy(model, tokenizer, prompt, steps: int) -> str:
    """Greedy decoding by hand: full forward each step, no cache, no padding, stop at EOS."""
    ids = prompt_token_ids(tokenizer, prompt)
    new: list[int] = []
    with torch.no_grad():
        for _ in range(steps):
            token = int(model(input_ids=torch.tensor([ids + new])).logits[0, -1].argmax())
            if token == tokenizer.eos_token_id:
                break
            new.append(token)
    return tokenizer.decode(new, skip_special_tokens=True).strip()


def test_batched_generation_equals_one_at_a_time(chatty_model, tiny_tokenizer):
    batched = generate(chatty_model, tiny_tokenizer, PROMPTS, max_new_tokens=10, batch_size=3)
    single = [
        generate(chatty_model, tiny_tokenizer, [prompt], max_new_tokens=10, batch_size=1)[0] for prompt in PROMPTS
    ]
    assert batched == single
    assert len(set(batched)) == len(PROMPTS) and all(batched)  # varied, non-empty replies: the check has teeth
    assert tiny_tokenizer.padding_side == "right"  # restored after generating with left padding


def test_generation_equals_hand_written_greedy_decoding(chatty_model, tiny_tokenizer):
    replies = generate(chatty_model, tiny_tokenizer, PROMPTS, max_new_tokens=6, batch_size=4)
    assert replies == [manual_greedy(chatty_model, tiny_tokenizer, prompt, 6) for prompt in PROMPTS]


def test_generation_works_for_peft_models(chatty_model, tiny_tokenizer):
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(
        chatty_model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    ).eval()
    batched = generate(peft_model, tiny_tokenizer, PROMPTS, max_new_tokens=6, batch_size=2)
    assert batched == [manual_greedy(peft_model, tiny_tokenizer, prompt, 6) for prompt in PROMPTS]


def test_length_sorted_batches_group_similar_lengths():
    assert length_sorted_batches([3, 9, 1, 7, 5], 2) == [[1, 3], [4, 0], [2]]


def manual_greedy_logprobs(model, tokenizer, prompt, steps: int) -> list[float]:
    """Log-probabilities of the tokens hand-written greedy decoding picks, the EOS that ends it included."""
    ids = prompt_token_ids(tokenizer, prompt)
    new: list[int] = []
    logprobs: list[float] = []
    with torch.no_grad():
        for _ in range(steps):
            distribution = torch.log_softmax(model(input_ids=torch.tensor([ids + new])).logits[0, -1].float(), -1)
            token = int(distribution.argmax())
            logprobs.append(float(distribution[token]))
            if token == tokenizer.eos_token_id:
                break
            new.append(token)
    return logprobs


def test_generation_with_logprobs_gives_the_same_replies_and_their_token_logprobs(chatty_model, tiny_tokenizer):
    scored = generate_with_logprobs(chatty_model, tiny_tokenizer, PROMPTS, max_new_tokens=6, batch_size=3)
    assert [text for text, _ in scored] == generate(chatty_model, tiny_tokenizer, PROMPTS, 6, 3)
    for prompt, (_, logprobs) in zip(PROMPTS, scored):
        assert logprobs == pytest.approx(manual_greedy_logprobs(chatty_model, tiny_tokenizer, prompt, 6), abs=1e-4)
        assert 1 <= len(logprobs) <= 6 and all(value <= 0 for value in logprobs)
