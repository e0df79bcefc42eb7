"""Batched generation from chat prompts: the same prompt text and token boundaries as training."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from tunesmith.data.example import Message
from tunesmith.data.tokenize import render_prompt


def generate(
    model,
    tokenizer,
    prompts: list[list[Message]],
    max_new_tokens: int,
    batch_size: int,
    do_sample: bool = False,
) -> list[str]:
    """The model's reply to each prompt (a message list), greedy unless ``do_sample``, in input order.

    Works for plain and PEFT-wrapped models. Prompts are batched by length so batches carry little padding.
    """
    texts = [render_prompt(tokenizer, prompt) for prompt in prompts]
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
    replies: list[str] = [""] * len(texts)
    for batch in length_sorted_batches(lengths, batch_size):
        outputs = _generate_batch(model, tokenizer, [texts[i] for i in batch], max_new_tokens, do_sample)
        for index, reply in zip(batch, outputs):
            replies[index] = reply
    return replies


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length (longest first, so memory peaks show up at once)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


@contextmanager
def left_padding(tokenizer) -> Iterator[None]:
    """Pad on the left while inside: decoder-only models continue from the last position of every row."""
    saved = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        yield
    finally:
        tokenizer.padding_side = saved


def model_device(model) -> torch.device:
    return next(model.parameters()).device


def _generate_batch(model, tokenizer, texts: list[str], max_new_tokens: int, do_sample: bool) -> list[str]:
    with left_padding(tokenizer):
        batch = tokenizer(texts, add_special_tokens=False, padding=True, return_tensors="pt")
    batch = batch.to(model_device(model))
    with torch.inference_mode():
        output = model.generate(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            max_new_tokens=max_new_tokens,
            do_sample=do_sample,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            # Models are loaded with config.use_cache=False for training; without the cache every new token
            # would re-run the whole sequence.
            use_cache=True,
        )
    new_tokens = output[:, batch["input_ids"].shape[1]:]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
