"""Batched generation from chat prompts: the same prompt text and token boundaries as training; optionally with
each answer's token log-probabilities (a generation's sequence confidence, `tunesmith.predict.calibration`)."""

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
    return [text for text, _ in _generate_all(model, tokenizer, prompts, max_new_tokens, batch_size, do_sample)]


def generate_with_logprobs(
    model, tokenizer, prompts: list[list[Message]], max_new_tokens: int, batch_size: int,
) -> list[tuple[str, list[float]]]:
    """`generate`'s greedy replies, each with the log-probability of every token the model generated for it, up
    to and including the EOS that ended it (none when it ran out of ``max_new_tokens``). The plain `generate`
    keeps no per-step logits: they cost a vocabulary-wide row per step and row."""
    return _generate_all(model, tokenizer, prompts, max_new_tokens, batch_size, False, scored=True)


def generate_token_ids(model, tokenizer, prompts: list[list[Message]], max_new_tokens: int,
                       batch_size: int) -> list[list[int]]:
    """`generate`'s greedy replies as the token ids the model generated, up to and including the EOS that ended
    each (none when it ran out of ``max_new_tokens``): what a comparison of two models' next-token choices on the
    same answer reads, free of the round trip through text."""
    texts = [render_prompt(tokenizer, prompt) for prompt in prompts]
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
    replies: list[list[int]] = [[] for _ in texts]
    for batch in length_sorted_batches(lengths, batch_size):
        _, new_tokens = _generate_tokens(model, tokenizer, [texts[i] for i in batch], max_new_tokens, False, False)
        for index, tokens in zip(batch, new_tokens.cpu().tolist()):
            end = tokens.index(tokenizer.eos_token_id) + 1 if tokenizer.eos_token_id in tokens else len(tokens)
            replies[index] = tokens[:end]
    return replies


def _generate_all(model, tokenizer, prompts: list[list[Message]], max_new_tokens: int, batch_size: int,
                  do_sample: bool, scored: bool = False) -> list[tuple[str, list[float] | None]]:
    texts = [render_prompt(tokenizer, prompt) for prompt in prompts]
    lengths = [len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts]
    replies: list[tuple[str, list[float] | None]] = [("", None)] * len(texts)
    for batch in length_sorted_batches(lengths, batch_size):
        outputs = _generate_batch(model, tokenizer, [texts[i] for i in batch], max_new_tokens, do_sample, scored)
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


def _generate_batch(model, tokenizer, texts: list[str], max_new_tokens: int, do_sample: bool,
                    scored: bool) -> list[tuple[str, list[float] | None]]:
    output, new_tokens = _generate_tokens(model, tokenizer, texts, max_new_tokens, do_sample, scored)
    texts = [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]
    if not scored:
        return [(text, None) for text in texts]
    return list(zip(texts, _answer_logprobs(output.scores, new_tokens, tokenizer.eos_token_id)))


def _generate_tokens(model, tokenizer, texts: list[str], max_new_tokens: int, do_sample: bool, scored: bool):
    """``(output, new_tokens)`` of ``model.generate`` on left-padded ``texts``: the new tokens of each row, padded
    after its EOS; ``output`` holds the per-step scores when ``scored``."""
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
            return_dict_in_generate=scored,
            output_scores=scored,
        )
    sequences = output.sequences if scored else output
    return output, sequences[:, batch["input_ids"].shape[1]:]


def _answer_logprobs(step_scores: tuple[torch.Tensor, ...], new_tokens: torch.Tensor, eos_id: int) -> list[list[float]]:
    """Each row's log-probability of the tokens it generated, up to and including its first EOS (greedy scores are
    the raw logits, so their log-softmax is the model's own distribution); the padding after an EOS is left out."""
    columns = [torch.log_softmax(scores.float(), dim=-1).gather(1, new_tokens[:, step:step + 1])
               for step, scores in enumerate(step_scores)]
    logprobs = torch.cat(columns, dim=1).cpu().tolist()
    result = []
    for row, tokens in zip(logprobs, new_tokens.cpu().tolist()):
        end = tokens.index(eos_id) + 1 if eos_id in tokens else len(tokens)
        result.append(row[:end])
    return result
