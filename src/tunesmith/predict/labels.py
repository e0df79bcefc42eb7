"""Classification by label likelihood: each label's reply scored as the model's answer to a prompt.

Label scoring runs each prompt batch through the model once and then only the (few) label tokens on top of
the cached prompt, once per label: with 1,000 test rows, two models and 2 CPU cores, re-running the prompt
for every label would multiply the evaluation time by the number of labels.
"""

from __future__ import annotations

import torch

from tunesmith.data.example import Example, Message
from tunesmith.data.tokenize import IGNORE_INDEX, prompt_token_ids, tokenize_example
from tunesmith.errors import ModelError
from tunesmith.predict.generation import left_padding, length_sorted_batches, model_device

_NO_TRUNCATION = 1 << 62


def score_labels(
    model, tokenizer, prompts: list[list[Message]], labels: list[str], batch_size: int
) -> list[list[float]]:
    """For each prompt, the total log-probability of each label's reply tokens (``scores[prompt][label]``).

    A label's reply is exactly what training supervises for it (`label_token_ids`): the label text plus the
    EOS token, so a label is not rewarded for being a prefix of a longer answer.
    """
    prompt_ids = [prompt_token_ids(tokenizer, prompt) for prompt in prompts]
    scores: list[list[float]] = [[] for _ in prompts]
    for batch in length_sorted_batches([len(ids) for ids in prompt_ids], batch_size):
        replies = [_batch_label_ids(tokenizer, [prompts[i] for i in batch], label) for label in labels]
        batch_scores = _score_batch(model, tokenizer, [prompt_ids[i] for i in batch], replies)
        for index, row in zip(batch, batch_scores):
            scores[index] = row
    return scores


def predict_labels(scores: list[list[float]], labels: list[str]) -> list[str]:
    """The highest-scoring label of each row (the first one listed on a tie)."""
    return [labels[max(range(len(labels)), key=row.__getitem__)] for row in scores]


def label_token_ids(tokenizer, prompt: list[Message], label: str) -> list[int]:
    """The tokens `tokenize_example` supervises when ``label`` is the assistant's reply to ``prompt``."""
    conversation = (*prompt, {"role": "assistant", "content": label})
    labels = tokenize_example(Example(messages=conversation, location="<label>"), tokenizer, _NO_TRUNCATION).labels
    # The final reply is the last unbroken run of supervised tokens (earlier replies, if any, are separated
    # from it by the unsupervised user turn in between).
    end = max(i for i, token in enumerate(labels) if token != IGNORE_INDEX) + 1
    start = end
    while start > 0 and labels[start - 1] != IGNORE_INDEX:
        start -= 1
    return labels[start:end]


def _batch_label_ids(tokenizer, prompts: list[list[Message]], label: str) -> list[int]:
    ids = [label_token_ids(tokenizer, prompt, label) for prompt in prompts]
    if any(row != ids[0] for row in ids):
        raise ModelError(
            f"the chat template renders the reply {label!r} differently depending on the prompt, so labels "
            "cannot be scored on a shared prompt cache", "set evaluate.classification_mode: generate",
        )
    return ids[0]


def _score_batch(model, tokenizer, prompt_ids: list[list[int]], replies: list[list[int]]) -> list[list[float]]:
    device = model_device(model)
    with left_padding(tokenizer):
        padded = tokenizer.pad({"input_ids": prompt_ids}, padding=True, return_tensors="pt").to(device)
    mask = padded["attention_mask"]
    rows = mask.shape[0]
    prompt_lengths = mask.sum(-1, keepdim=True)
    scores = torch.zeros(rows, len(replies), dtype=torch.float64)
    with torch.inference_mode():
        # Left padding puts every prompt's last token in the last column, whose logits score each label's first
        # token. Positions count from each row's first real token, as they would without padding.
        output = model(
            input_ids=padded["input_ids"], attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
            use_cache=True, logits_to_keep=1,
        )
        cache = output.past_key_values
        first_logprobs = torch.log_softmax(output.logits[:, -1].float(), dim=-1)
        for column, reply in enumerate(replies):
            reply_ids = torch.tensor(reply, device=device)
            total = first_logprobs[:, reply[0]].clone()
            fed = len(reply) - 1  # the last reply token is only predicted, never fed
            if fed:
                logits = model(
                    input_ids=reply_ids[:-1].expand(rows, fed),
                    attention_mask=torch.cat([mask, mask.new_ones(rows, fed)], dim=1),
                    position_ids=prompt_lengths + torch.arange(fed, device=device),
                    past_key_values=cache, use_cache=True,
                ).logits
                logprobs = torch.log_softmax(logits.float(), dim=-1)
                total += logprobs.gather(-1, reply_ids[1:].expand(rows, fed).unsqueeze(-1)).squeeze(-1).sum(-1)
                cache.crop(-fed)  # negative: drop this label's tokens, back to the prompt-only cache
            scores[:, column] = total.double().cpu()
    return scores.tolist()
