"""Conversation → token ids and labels, with the loss on assistant tokens only (by default).

Why by segments: the prompt part and each assistant reply are tokenized separately, exactly as generation
sees them (the prompt is tokenized alone and the model continues it), so training and inference agree on
token boundaries. The supervised tokens of a reply are its content plus the model's EOS; what the template
writes after the EOS (ChatML's newline) is input but not a label.
"""

from __future__ import annotations

from dataclasses import dataclass

from tunesmith.data.example import Example, Message
from tunesmith.errors import DataError

IGNORE_INDEX = -100


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    """Same length as ``input_ids``; ``IGNORE_INDEX`` where no loss is computed."""
    source: str
    truncated: bool = False
    supervised_lost: int = 0
    """Supervised tokens cut off by truncation to ``max_length``."""

    @property
    def num_supervised(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)


@dataclass
class TruncationStats:
    rows: int = 0
    truncated_rows: int = 0
    supervised_tokens_lost: int = 0
    rows_without_supervision: int = 0
    """Rows left with no supervised token at all (truncation cut the whole answer)."""


def render_prompt(tokenizer, messages: list[Message]) -> str:
    """The chat-template text the model is given before it answers."""
    return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)


def prompt_token_ids(tokenizer, messages: list[Message]) -> list[int]:
    """Token ids of `render_prompt` (the template writes any BOS itself, so no special tokens are added)."""
    return tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"]


def conversation_segments(tokenizer, messages: list[Message]) -> list[tuple[str, bool]]:
    """Split the rendered conversation into ``(text, is_assistant_reply)`` pieces that join to the full text."""
    segments: list[tuple[str, bool]] = []
    rendered = ""
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = render_prompt(tokenizer, messages[:index])
        full = tokenizer.apply_chat_template(list(messages[: index + 1]), tokenize=False)
        if not (prefix.startswith(rendered) and full.startswith(prefix)):
            raise DataError(
                "<chat template>", None,
                "the model's chat template does not render conversations as a growing prefix, so assistant "
                "turns cannot be located", "use a model with a ChatML-style template",
            )
        segments.append((prefix[len(rendered):], False))
        segments.append((full[len(prefix):], True))
        rendered = full
    tail = tokenizer.apply_chat_template(list(messages), tokenize=False)
    if len(tail) > len(rendered) and tail.startswith(rendered):
        segments.append((tail[len(rendered):], False))
    return [(text, supervised) for text, supervised in segments if text]


def tokenize_example(example: Example, tokenizer, max_length: int, loss_on: str = "assistant") -> TokenizedExample:
    """Tokenize one example; labels cover each assistant reply up to and including the EOS token."""
    eos = tokenizer.eos_token_id
    input_ids: list[int] = []
    labels: list[int] = []
    for text, is_reply in conversation_segments(tokenizer, list(example.messages)):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        if not is_reply:
            input_ids += ids
            labels += ids if loss_on == "all" else [IGNORE_INDEX] * len(ids)
            continue
        if eos in ids:
            end = ids.index(eos) + 1
        else:  # a template without an end-of-turn token: the reply must still teach the model to stop
            ids = ids + [eos]
            end = len(ids)
        input_ids += ids
        labels += ids[:end] + (ids[end:] if loss_on == "all" else [IGNORE_INDEX] * (len(ids) - end))
    truncated = len(input_ids) > max_length
    lost = sum(1 for label in labels[max_length:] if label != IGNORE_INDEX) if truncated else 0
    return TokenizedExample(
        input_ids=input_ids[:max_length], labels=labels[:max_length], source=example.source,
        truncated=truncated, supervised_lost=lost,
    )


def tokenize_examples(
    examples: list[Example], tokenizer, max_length: int, loss_on: str = "assistant"
) -> tuple[list[TokenizedExample], TruncationStats]:
    """Tokenize many examples and count what truncation cost (never silent)."""
    stats = TruncationStats()
    tokenized = []
    for example in examples:
        item = tokenize_example(example, tokenizer, max_length, loss_on)
        stats.rows += 1
        stats.truncated_rows += item.truncated
        stats.supervised_tokens_lost += item.supervised_lost
        stats.rows_without_supervision += item.num_supervised == 0
        tokenized.append(item)
    return tokenized, stats
