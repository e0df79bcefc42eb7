"""The test loss and perplexity: from a pass of the training loop's own loss over the test rows, or read off the
label scores that classification computed anyway (`tunesmith.predict.labels`)."""

from __future__ import annotations

import math

from tunesmith.data.example import Example
from tunesmith.data.tokenize import tokenize_examples
from tunesmith.predict.labels import label_token_ids
from tunesmith.predict.loss import mean_supervised_loss  # the training loop's own validation loss


def loss_and_perplexity(model, tokenizer, examples: list[Example], max_length: int, batch_size: int) -> dict:
    """Mean cross-entropy over every supervised token of ``examples`` (token-weighted) and its exp.

    ``loss`` and ``perplexity`` are ``None`` when no example has a supervised token left after truncation.
    """
    tokenized, _ = tokenize_examples(examples, tokenizer, max_length)
    loss, tokens = mean_supervised_loss(model, tokenized, batch_size, tokenizer.pad_token_id)
    return _mean_loss(loss * tokens if tokens else 0.0, tokens)


def loss_from_label_scores(tokenizer, examples: list[Example], labels: list[str],
                           scores: list[list[float]]) -> dict | None:
    """`loss_and_perplexity` of classification examples, read off their `score_labels` scores.

    The supervised tokens of a one-reply example whose reply is a label are exactly that label's scored tokens,
    so the test loss needs no second pass over the test set (which would double a likelihood evaluation).
    ``None`` when that does not hold for every example (an earlier assistant turn is also supervised, or the
    reply is not a label): use `loss_and_perplexity` then. Like the scores, it is the loss of whole prompts:
    scoring never truncates, so one over-long test row does not force a second pass over the whole test set.
    """
    total_loss = 0.0
    total_tokens = 0
    for example, row in zip(examples, scores, strict=True):
        replies = sum(1 for message in example.messages if message["role"] == "assistant")
        if replies != 1 or example.reference not in labels:
            return None
        supervised = len(label_token_ids(tokenizer, example.prompt_messages, example.reference))
        total_loss -= row[labels.index(example.reference)]
        total_tokens += supervised
    return _mean_loss(total_loss, total_tokens)


def _mean_loss(total_loss: float, total_tokens: int) -> dict:
    if total_tokens == 0:
        return {"loss": None, "perplexity": None, "tokens": 0}
    loss = total_loss / total_tokens
    return {"loss": loss, "perplexity": math.exp(loss), "tokens": total_tokens}
