"""What training trains on, tokenized: the rows of an SFT run, or the pairs of a preference run (`method: dpo |
orpo | simpo`), and the check that the data's rows are the kind the method trains on."""

from __future__ import annotations

import logging

from tunesmith.config.schema import RunConfig
from tunesmith.config.vocabulary import is_preference
from tunesmith.data.cache import keep_supervised, tokenized_split
from tunesmith.data.example import Splits
from tunesmith.data.pairs import tokenized_pair_split
from tunesmith.data.stream import stream_train_rows
from tunesmith.errors import ConfigError, DataError, RunError

log = logging.getLogger("tunesmith")

PREFERENCE_FORMAT = "preference"
"""`Splits.format` of preference rows (prompt, chosen, rejected)."""


def check_rows_fit_method(config: RunConfig, splits: Splits) -> None:
    """A preference method needs preference rows, and preference rows need a preference method: a one-line
    `ConfigError` naming `method` otherwise (a preference row without its rejected answer is a `DataError`)."""
    pairs = splits.format == PREFERENCE_FORMAT
    if is_preference(config.method) and not pairs:
        raise ConfigError("method", f"{config.method} trains on preference pairs (prompt, chosen, rejected), and the "
                          f"data's rows are {splits.format} rows",
                          "give data.format: preference rows, or use method: lora for supervised fine-tuning")
    if pairs and not is_preference(config.method):
        raise ConfigError("method", f"the data holds preference pairs (prompt, chosen, rejected), which "
                          f"{config.method} cannot train on", "use method: dpo, orpo or simpo")
    for example in splits.train if pairs else ():
        if example.rejected is None:
            file, _, line = example.location.rpartition(":")
            raise DataError(file or example.location, int(line) if line.isdigit() else None,
                            "a preference row without a rejected answer")


def training_rows(config: RunConfig, splits: Splits, tokenizer):
    """``(training rows, validation rows, truncation of the training rows)``, tokenized (from the cache when it
    has them): `TokenizedExample`s, or `TokenizedPair`s for a preference method. With ``data.streaming`` the
    training file is streamed into the cache (``splits.train`` is empty); otherwise ``splits.train`` is
    tokenized. Rows (pairs) whose answer (either answer) was truncated away are dropped: they teach nothing."""
    check_rows_fit_method(config, splits)
    if is_preference(config.method):
        return _training_pairs(config, splits, tokenizer)
    if config.data.streaming:
        train_rows, truncation = stream_train_rows(config.data, splits.format, splits.labels, tokenizer)
    else:
        train_rows, truncation = tokenized_split(config.data, "train", splits.train, tokenizer)
    validation_rows, _ = tokenized_split(config.data, "validation", splits.validation, tokenizer)
    train_rows = keep_supervised(train_rows)
    _check_left(config, "row", bool(train_rows), bool(validation_rows), bool(keep_supervised(validation_rows)))
    _say_truncation(config, "training rows", truncation)
    return train_rows, validation_rows, truncation


def _training_pairs(config: RunConfig, splits: Splits, tokenizer):
    train_pairs, truncation = tokenized_pair_split(config.data, "train", splits.train, tokenizer)
    validation_pairs, _ = tokenized_pair_split(config.data, "validation", splits.validation, tokenizer)
    train_pairs = [pair for pair in train_pairs if pair.supervised]
    validation_pairs = [pair for pair in validation_pairs if pair.supervised]
    _check_left(config, "pair", bool(train_pairs), bool(splits.validation), bool(validation_pairs))
    _say_truncation(config, "training sequences (2 a pair)", truncation)
    return train_pairs, validation_pairs, truncation


def _check_left(config: RunConfig, what: str, train_left: bool, validation_given: bool, validation_left: bool) -> None:
    if not train_left:
        raise RunError(f"no training {what} has a supervised token left", "raise data.max_length")
    if validation_given and not validation_left:
        raise RunError(f"no validation {what} has a supervised token left after truncation to data.max_length "
                       f"{config.data.max_length}, so there is no validation loss to select the best weights by",
                       "raise data.max_length, or give validation rows with shorter prompts")


def _say_truncation(config: RunConfig, what: str, truncation) -> None:
    if truncation.truncated_rows:
        log.warning(
            "%d of %d %s truncated to %d tokens (%d supervised tokens lost, %d rows left with none)",
            truncation.truncated_rows, truncation.rows, what, config.data.max_length,
            truncation.supervised_tokens_lost, truncation.rows_without_supervision,
        )
