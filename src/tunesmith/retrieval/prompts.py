"""The prompt that puts retrieved passages before the question (`rag.prompt`): passages numbered, titles shown,
and as many as fit `data.max_length` beside the rest of the conversation and its answer. A passage that does not
fit whole is cut to the tokens left (when at least `MIN_PASSAGE_TOKENS` are) and the ones after it are left out;
`PromptFit` counts both, so a caller reports them instead of losing context silently."""

from __future__ import annotations

from dataclasses import dataclass, replace

from tunesmith.data.example import Example
from tunesmith.data.tokenize import prompt_token_ids
from tunesmith.retrieval.chunking import Passage

MIN_PASSAGE_TOKENS = 24
"""Fewer tokens left than this: a cut passage would be a fragment, so it is left out instead."""
PASSAGE_SEPARATOR = "\n\n"


@dataclass
class PromptFit:
    """What fitting passages into prompts did, summed over rows."""

    rows: int = 0
    passages_shown: int = 0
    passages_cut: int = 0
    passages_dropped: int = 0
    rows_short: int = 0
    """Rows that lost (part of) a passage."""

    def add(self, other: "PromptFit") -> None:
        self.rows += other.rows
        self.passages_shown += other.passages_shown
        self.passages_cut += other.passages_cut
        self.passages_dropped += other.passages_dropped
        self.rows_short += other.rows_short

    def describe(self) -> str:
        return (f"{self.rows_short} of {self.rows} prompts lost context to the length limit: "
                f"{self.passages_cut} passages cut, {self.passages_dropped} left out")


def fill_template(template: str, passages: str, question: str) -> str:
    # str.replace, not str.format: passages and questions may contain braces.
    return template.replace("{passages}", passages).replace("{question}", question)


def passage_heading(number: int, passage: Passage) -> str:
    return f"[{number}] {passage.title}\n" if passage.title else f"[{number}] "


def fit_passages(passages: list[Passage], budget: int, tokenizer) -> tuple[str, PromptFit]:
    """The numbered passages block within ``budget`` tokens (counted piece by piece with ``tokenizer``)."""
    fit = PromptFit(rows=1)
    pieces: list[str] = []
    left = budget
    for number, passage in enumerate(passages, 1):
        heading = passage_heading(number, passage)
        separator = PASSAGE_SEPARATOR if pieces else ""
        fixed = _count(tokenizer, separator + heading)
        body = tokenizer(passage.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        if fixed + len(body) <= left:
            pieces.append(separator + heading + passage.text)
            left -= fixed + len(body)
            fit.passages_shown += 1
            continue
        room = left - fixed
        if room >= MIN_PASSAGE_TOKENS:
            pieces.append(separator + heading + passage.text[: body[room - 1][1]])
            fit.passages_shown += 1
            fit.passages_cut += 1
            fit.passages_dropped += len(passages) - number
        else:
            fit.passages_dropped += len(passages) - number + 1
        break
    fit.rows_short = int(fit.passages_cut + fit.passages_dropped > 0)
    return "".join(pieces), fit


def with_passages(example: Example, passages: list[Passage], template: str, tokenizer, max_length: int,
                  answer_tokens: int) -> tuple[Example, PromptFit]:
    """``example`` whose last user turn is `rag.prompt` around it and the passages that fit: the whole
    conversation (rendered by the chat template) plus ``answer_tokens`` stays within ``max_length``."""
    messages = [dict(message) for message in example.messages]
    last_user = max(index for index, message in enumerate(messages) if message["role"] == "user")
    question = messages[last_user]["content"]
    messages[last_user]["content"] = fill_template(template, "", question)
    fixed = len(prompt_token_ids(tokenizer, messages[: last_user + 1])) + answer_tokens
    block, fit = fit_passages(passages, max(0, max_length - fixed), tokenizer)
    messages[last_user]["content"] = fill_template(template, block, question)
    return replace(example, messages=tuple(messages)), fit


def answer_token_count(example: Example, tokenizer) -> int:
    """Tokens a training row's answer takes, with its end-of-turn token."""
    return _count(tokenizer, example.reference) + 1


def _count(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else 0
