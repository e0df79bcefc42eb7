"""Conversation → token ids and labels, with the loss on assistant tokens only (by default).

Why by segments: the prompt part and each assistant reply are tokenized separately, exactly as generation
sees them (the prompt is tokenized alone and the model continues it), so training and inference agree on
token boundaries. The supervised tokens of a reply are its content plus the model's EOS; what the template
writes after the EOS (ChatML's newline) is input but not a label. An assistant turn marked ``"weight": 0``
(OpenAI fine-tuning JSONL) is context: its tokens are input exactly as the template renders them (no EOS is
appended where a template lacks one) and carry no label.

Why batched: a fast tokenizer encodes a list of texts in Rust on every core, and a chat template renders a
list of conversations in one call. Profiled on SmolLM2's tokenizer over alpaca_2k, the row-at-a-time version
spent ~50% in per-call tokenizer overhead and ~40% in template calls (three renders per single-turn row);
`tokenize_batch` renders each prefix once per batch, reuses the last render as the tail, and encodes every
segment of a batch in one call. Ids and labels are identical (tested over real data).

`datasets` is imported by the functions that use it: ~0.7 s to import, which a data check of a small file does
not need.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass

from tunesmith.data.example import Example, Message, location_order
from tunesmith.data.tools import split_tools, uses_tools
from tunesmith.errors import DataError
from tunesmith.models.templates import require_tool_support

IGNORE_INDEX = -100
PARALLEL_MIN_ROWS = 5_000
"""Below this many rows tokenization stays in-process: starting worker processes (each unpickles the
tokenizer) costs more than it saves on 2 cores."""
_BATCH_ROWS = 1_000


@dataclass
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    """Same length as ``input_ids``; ``IGNORE_INDEX`` where no loss is computed."""
    location: str
    """``FILE:LINE`` of the row."""
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

    def add(self, item: TokenizedExample) -> None:
        self.rows += 1
        self.truncated_rows += item.truncated
        self.supervised_tokens_lost += item.supervised_lost
        self.rows_without_supervision += item.num_supervised == 0


def render_prompt(tokenizer, messages: list[Message]) -> str:
    """The chat-template text the model is given before it answers (with the tools the conversation declares)."""
    return _render_all(tokenizer, [list(messages)], True)[0]


def render_conversation(tokenizer, messages: list[Message]) -> str:
    """The chat-template text of a whole conversation (with the tools it declares), no generation prompt."""
    return _render_all(tokenizer, [list(messages)], False)[0]


def prompt_token_ids(tokenizer, messages: list[Message]) -> list[int]:
    """Token ids of `render_prompt` (the template writes any BOS itself, so no special tokens are added)."""
    return tokenizer(render_prompt(tokenizer, messages), add_special_tokens=False)["input_ids"]


def is_supervised_turn(message: Message) -> bool:
    """An assistant turn the loss covers: not one marked ``weight: 0`` (context only)."""
    return message["role"] == "assistant" and message.get("weight", 1) != 0


def _render_all(tokenizer, conversations: list[list[Message]], add_generation_prompt: bool) -> list[str]:
    if not conversations:
        return []
    if not any(uses_tools(messages) for messages in conversations):
        # One call for the whole list: the template is compiled once and the per-call set-up is paid once.
        return tokenizer.apply_chat_template(conversations, tokenize=False,
                                             add_generation_prompt=add_generation_prompt)
    # Tool rows: `tools=` is one list per call, so conversations are rendered in groups that declare the same tools.
    require_tool_support(tokenizer)
    groups: dict[str, list[int]] = {}
    split = [split_tools(messages) for messages in conversations]
    for index, (_, tools) in enumerate(split):
        groups.setdefault(json.dumps(tools, sort_keys=True), []).append(index)
    rendered: list[str] = [""] * len(conversations)
    for indices in groups.values():
        texts = tokenizer.apply_chat_template([split[i][0] for i in indices], tools=split[indices[0]][1],
                                              tokenize=False, add_generation_prompt=add_generation_prompt)
        for index, text in zip(indices, texts):
            rendered[index] = text
    return rendered


def segments_of_batch(tokenizer, conversations: list[list[Message]],
                      locations: list[str] | None = None) -> list[list[tuple[str, bool]]]:
    """`conversation_segments` of many conversations, rendering each distinct prefix once. ``locations`` name
    the rows in errors."""
    turns = [[i for i, m in enumerate(messages) if m["role"] == "assistant"] for messages in conversations]
    prompts = _render_all(tokenizer, [m[:i] for m, idx in zip(conversations, turns) for i in idx], True)
    fulls = _render_all(tokenizer, [m[: i + 1] for m, idx in zip(conversations, turns) for i in idx], False)
    # The whole conversation was rendered already when it ends with an assistant turn (its last `full`).
    needs_tail = [not idx or idx[-1] != len(m) - 1 for m, idx in zip(conversations, turns)]
    tails = iter(_render_all(tokenizer, [m for m, need in zip(conversations, needs_tail) if need], False))
    position = 0
    result = []
    for number, (messages, indices, need_tail) in enumerate(zip(conversations, turns, needs_tail)):
        segments: list[tuple[str, bool]] = []
        rendered = ""
        for index in indices:
            prefix, full = prompts[position], fulls[position]
            position += 1
            if not (prefix.startswith(rendered) and full.startswith(prefix)):
                file, line = location_order(locations[number]) if locations else ("<conversation>", 0)
                raise DataError(
                    file, line or None,
                    f"the chat template does not render this conversation as a growing prefix (rendering it up "
                    f"to turn {index} changes the text of the turns before), so its replies cannot be located",
                    "check the order of the row's turns; a template that rewrites earlier turns needs "
                    "model.chat_template set to a built-in such as chatml",
                )
            segments.append((prefix[len(rendered):], False))
            segments.append((full[len(prefix):], is_supervised_turn(messages[index])))
            rendered = full
        if need_tail:
            tail = next(tails)
            if len(tail) > len(rendered) and tail.startswith(rendered):
                segments.append((tail[len(rendered):], False))
        result.append([(text, supervised) for text, supervised in segments if text])
    return result


def conversation_segments(tokenizer, messages: list[Message]) -> list[tuple[str, bool]]:
    """Split the rendered conversation into ``(text, is_supervised_reply)`` pieces that join to the full text."""
    return segments_of_batch(tokenizer, [list(messages)])[0]


def encode_texts(tokenizer, texts: list[str]) -> list[list[int]]:
    """Token ids of each text, no special tokens added: ``tokenizer(texts, add_special_tokens=False)``.

    Why the Rust tokenizer directly: transformers converts every encoding into a Python dict (offsets, masks),
    which measured 2.5x the time of the encoding itself on alpaca rows; `encode_batch_fast` skips offsets.
    Only when the Rust tokenizer has no truncation or padding of its own (transformers would turn them off
    for the call; we cannot tell it to here), else the ordinary call.
    """
    if not texts:
        return []
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or backend.truncation is not None or backend.padding is not None:
        return tokenizer(texts, add_special_tokens=False)["input_ids"]
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    return [encoding.ids for encoding in encode(texts, add_special_tokens=False)]


def tokenize_batch(
    examples: list[Example], tokenizer, max_length: int, loss_on: str = "assistant"
) -> list[TokenizedExample]:
    """Tokenize many examples in one tokenizer call; labels cover each reply up to and including the EOS."""
    eos = tokenizer.eos_token_id
    all_segments = segments_of_batch(tokenizer, [list(example.messages) for example in examples],
                                     [example.location for example in examples])
    texts = [text for segments in all_segments for text, _ in segments]
    encoded = iter(encode_texts(tokenizer, texts))
    result = []
    for example, segments in zip(examples, all_segments):
        input_ids: list[int] = []
        labels: list[int] = []
        for text, is_reply in segments:
            ids = next(encoded)
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
        result.append(_truncate(input_ids, labels, max_length, example.location))
    return result


def _truncate(input_ids: list[int], labels: list[int], max_length: int, location: str) -> TokenizedExample:
    truncated = len(input_ids) > max_length
    lost = sum(1 for label in labels[max_length:] if label != IGNORE_INDEX) if truncated else 0
    return TokenizedExample(
        input_ids=input_ids[:max_length], labels=labels[:max_length], location=location,
        truncated=truncated, supervised_lost=lost,
    )


def tokenize_example(example: Example, tokenizer, max_length: int, loss_on: str = "assistant") -> TokenizedExample:
    """Tokenize one example; labels cover each assistant reply up to and including the EOS token."""
    return tokenize_batch([example], tokenizer, max_length, loss_on)[0]


def tokenize_examples(
    examples: list[Example], tokenizer, max_length: int, loss_on: str = "assistant", num_proc: int | None = None
) -> tuple[list[TokenizedExample], TruncationStats]:
    """Tokenize many examples and count what truncation cost (never silent).

    From `PARALLEL_MIN_ROWS` rows on, ``num_proc`` processes (default: every core) share the work.
    """
    if len(examples) >= PARALLEL_MIN_ROWS and worker_count(num_proc) > 1:
        dataset = tokenize_to_dataset(examples, tokenizer, max_length, loss_on, num_proc)
        tokenized = [rows_from_columns(batch) for batch in dataset.iter(batch_size=_BATCH_ROWS)]
        tokenized = [item for batch in tokenized for item in batch]
    else:
        tokenized = [
            item for start in range(0, len(examples), _BATCH_ROWS)
            for item in tokenize_batch(examples[start : start + _BATCH_ROWS], tokenizer, max_length, loss_on)
        ]
    stats = TruncationStats()
    for item in tokenized:
        stats.add(item)
    return tokenized, stats


# ---- Arrow (datasets) form: what the cache stores and training reads ----------------------------------------

TOKENIZED_COLUMNS = ("input_ids", "labels", "location", "truncated", "supervised_lost", "num_supervised", "length")


def worker_count(num_proc: int | None) -> int:
    return num_proc or len(os.sched_getaffinity(0))


def columns_from_rows(rows: list[TokenizedExample]) -> dict[str, list]:
    """Tokenized rows as the columns of a `datasets.Dataset` (lengths and supervised counts precomputed, so
    batching and filtering never need to read the token ids)."""
    return {
        "input_ids": [row.input_ids for row in rows], "labels": [row.labels for row in rows],
        "location": [row.location for row in rows], "truncated": [row.truncated for row in rows],
        "supervised_lost": [row.supervised_lost for row in rows],
        "num_supervised": [row.num_supervised for row in rows], "length": [len(row.input_ids) for row in rows],
    }


def rows_from_columns(columns: dict[str, list]) -> list[TokenizedExample]:
    return [
        TokenizedExample(input_ids=ids, labels=labels, location=location, truncated=truncated, supervised_lost=lost)
        for ids, labels, location, truncated, lost in zip(
            columns["input_ids"], columns["labels"], columns["location"], columns["truncated"],
            columns["supervised_lost"],
        )
    ]


def examples_to_columns(examples: list[Example]) -> dict[str, list]:
    """Examples as plain columns (messages as JSON, location) that Arrow can hold and worker processes can read.
    Why JSON: Arrow gives every message the union of the keys of all messages, and a tool call's arguments (any
    JSON object) have no one Arrow type."""
    return {"messages": [json.dumps(example.messages, ensure_ascii=False) for example in examples],
            "location": [example.location for example in examples]}


def _examples_from_columns(columns: dict[str, list]) -> list[Example]:
    return [Example(messages=tuple(json.loads(messages)), location=location)
            for messages, location in zip(columns["messages"], columns["location"])]


def _tokenize_columns(columns: dict[str, list], tokenizer, max_length: int, loss_on: str) -> dict[str, list]:
    return columns_from_rows(tokenize_batch(_examples_from_columns(columns), tokenizer, max_length, loss_on))


def tokenize_to_dataset(
    examples: list[Example], tokenizer, max_length: int, loss_on: str = "assistant", num_proc: int | None = None
):
    """Tokenize into a `datasets.Dataset` with `TOKENIZED_COLUMNS`, on ``num_proc`` processes for big inputs."""
    import datasets

    procs = worker_count(num_proc) if len(examples) >= PARALLEL_MIN_ROWS else 1
    if procs == 1:
        rows = [
            item for start in range(0, len(examples), _BATCH_ROWS)
            for item in tokenize_batch(examples[start : start + _BATCH_ROWS], tokenizer, max_length, loss_on)
        ]
        return datasets.Dataset.from_dict(columns_from_rows(rows))
    conversations = datasets.Dataset.from_dict(examples_to_columns(examples))
    with _quiet_tokenizer_fork(), no_progress_bars():
        return conversations.map(
            _tokenize_columns, batched=True, batch_size=_BATCH_ROWS, num_proc=procs,
            remove_columns=conversations.column_names, new_fingerprint=None,
            fn_kwargs={"tokenizer": tokenizer, "max_length": max_length, "loss_on": loss_on},
        )


@contextmanager
def _quiet_tokenizer_fork():
    """Workers are forked: a Rust tokenizer that already ran threads in this process warns in every child and
    turns its threads off there anyway. Saying so up front silences the warning (the workers are the
    parallelism)."""
    saved = os.environ.get("TOKENIZERS_PARALLELISM")
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = saved


@contextmanager
def no_progress_bars():
    """`datasets` draws a bar for every map, write and save; tunesmith logs one line per split instead."""
    import datasets

    was_enabled = datasets.utils.logging.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if was_enabled:
            datasets.enable_progress_bars()
