"""Preference pairs, tokenized: one prompt, the chosen answer and the rejected one, each answer as a whole sequence
(prompt + answer) whose labels cover the answer only.

Why two whole sequences and not TRL's ``prompt_ids`` / ``chosen_ids`` / ``rejected_ids``: the rest of tunesmith
(collation, packing, the supervised-position loss, truncation accounting) already works on `TokenizedExample`, so a
pair is two of them; ``prompt_length`` says where the answers start, which is all a TRL-shaped view needs
(`TokenizedPair.trl_ids`). Both answers are rendered through the chat template after the same prompt, so the prompt
tokens are identical, and each answer's labels run to its end-of-turn token included, as SFT's do
(`tunesmith.data.tokenize.tokenize_batch`). Tokens after it (a template's trailing newline) are dropped: no loss is
on them and, in a causal model, nothing before depends on them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path

from tunesmith.atomic import recover_folder
from tunesmith.config.schema import DataConfig
from tunesmith.data.cache import cache_key, tokenized_cache_root, write_entry
from tunesmith.data.example import Example
from tunesmith.data.tokenize import IGNORE_INDEX, TokenizedExample, TruncationStats, no_progress_bars, tokenize_batch
from tunesmith.json_files import read_json

log = logging.getLogger("tunesmith")


@dataclass
class TokenizedPair:
    chosen: TokenizedExample
    rejected: TokenizedExample
    location: str
    """``FILE:LINE`` of the row."""

    @property
    def prompt_length(self) -> int:
        """Tokens before the first supervised one (the same in both sequences)."""
        return _prompt_length(self.chosen)

    @property
    def length(self) -> int:
        """The longer sequence's tokens: what a batch of pairs is padded to."""
        return max(len(self.chosen.input_ids), len(self.rejected.input_ids))

    @property
    def tokens(self) -> int:
        """Both sequences' tokens: what the pair fills of a pack (`train.packing`)."""
        return len(self.chosen.input_ids) + len(self.rejected.input_ids)

    @property
    def supervised(self) -> bool:
        """Both answers keep at least one supervised token after truncation (else the pair teaches nothing)."""
        return self.chosen.num_supervised > 0 and self.rejected.num_supervised > 0

    def trl_ids(self) -> dict[str, list[int]]:
        """TRL's DPO row (``prompt_ids``, ``chosen_ids``, ``rejected_ids``): for comparisons against TRL."""
        cut = self.prompt_length
        return {"prompt_ids": self.chosen.input_ids[:cut], "chosen_ids": self.chosen.input_ids[cut:],
                "rejected_ids": self.rejected.input_ids[cut:]}


def pair_conversations(example: Example) -> tuple[Example, Example]:
    """The chosen and the rejected conversation of a preference row, as SFT examples."""
    if example.rejected is None:
        raise ValueError(f"{example.location}: not a preference row (no rejected answer)")
    chosen = replace(example, rejected=None)
    rejected = replace(example, messages=(*example.messages[:-1], example.rejected), rejected=None)
    return chosen, rejected


def tokenize_pairs(examples: list[Example], tokenizer, max_length: int) -> tuple[list[TokenizedPair], TruncationStats]:
    """Tokenize preference rows (`Example.rejected` set) into pairs, truncated to ``max_length`` tokens each
    sequence, and count what truncation cost (both sequences of every pair)."""
    conversations = [conversation for example in examples for conversation in pair_conversations(example)]
    rows = [_only_earlier_context(row) for row in tokenize_batch(conversations, tokenizer, max_length)]
    pairs = [TokenizedPair(rows[2 * i], rows[2 * i + 1], example.location) for i, example in enumerate(examples)]
    stats = TruncationStats()
    for pair in pairs:
        stats.add(pair.chosen)
        stats.add(pair.rejected)
    return pairs, stats


def _only_earlier_context(row: TokenizedExample) -> TokenizedExample:
    """The row without the unsupervised tokens after its last supervised one."""
    last = max((i for i, label in enumerate(row.labels) if label != IGNORE_INDEX), default=len(row.labels) - 1)
    return replace(row, input_ids=row.input_ids[: last + 1], labels=row.labels[: last + 1])


def _prompt_length(row: TokenizedExample) -> int:
    return next((i for i, label in enumerate(row.labels) if label != IGNORE_INDEX), len(row.labels))


def tokenized_pair_split(data, split: str, examples: list[Example],
                         tokenizer) -> tuple[list[TokenizedPair], TruncationStats]:
    """The pairs of one split (``split``: train, validation or test) of a preference run, tokenized to
    ``data.max_length`` (`DataConfig`). The one entry point training and evaluation use.

    Cached as the tokenized rows of other formats are (`tunesmith.data.cache`: the same key over the files, the
    row-shaping settings, the tokenizer and the rows, rejected answers included), under a key of its own
    (`PAIR_CACHE_VERSION`); ``data.cache: false`` always tokenizes and stores nothing. The entry is read whole into
    memory: a preference split is small beside the model."""
    if not examples:
        return [], TruncationStats()
    if not isinstance(data, DataConfig) or not data.cache:  # a test's stand-in holds max_length alone
        return tokenize_pairs(examples, tokenizer, data.max_length)
    folder = tokenized_cache_root() / cache_key(data, f"pairs-v{PAIR_CACHE_VERSION}:{split}", tokenizer, examples)
    cached = _load_pairs(folder)
    if cached is not None:
        log.info("loaded %d tokenized %s pairs from cache (%s)", len(cached[0]), split, folder)
        return cached
    pairs, stats = tokenize_pairs(examples, tokenizer, data.max_length)
    write_entry(folder, _pairs_dataset(pairs), stats)
    log.info("tokenized %d %s pairs (cached at %s)", len(pairs), split, folder)
    return pairs, stats


PAIR_CACHE_VERSION = 1
"""Raise when the stored columns or how pairs are tokenized change: old entries then stop matching."""
_SIDES = ("chosen", "rejected")
_FIELDS = ("input_ids", "labels", "truncated", "supervised_lost")


def _pairs_dataset(pairs: list[TokenizedPair]):
    import datasets

    columns: dict[str, list] = {"location": [pair.location for pair in pairs]}
    for side in _SIDES:
        for name in _FIELDS:
            columns[f"{side}_{name}"] = [getattr(getattr(pair, side), name) for pair in pairs]
    return datasets.Dataset.from_dict(columns)


def _load_pairs(folder: Path) -> tuple[list[TokenizedPair], TruncationStats] | None:
    """A finished entry's pairs, or None when there is none (a half-written one never has this name)."""
    import datasets

    recover_folder(folder)
    if not (folder / "stats.json").is_file():
        return None
    with no_progress_bars():
        columns = datasets.load_from_disk(str(folder / "dataset")).to_dict()
    pairs = []
    for index, location in enumerate(columns["location"]):
        chosen, rejected = (TokenizedExample(location=location, **{name: columns[f"{side}_{name}"][index]
                                                                   for name in _FIELDS}) for side in _SIDES)
        pairs.append(TokenizedPair(chosen, rejected, location))
    return pairs, TruncationStats(**read_json(folder / "stats.json"))
