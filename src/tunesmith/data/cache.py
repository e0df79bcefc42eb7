"""Tokenized datasets cached on disk (Arrow, via `datasets`), so a second run with the same inputs skips
tokenization.

A cache entry is `cache_dir()/tokenized/<key>/` holding `dataset/` (`Dataset.save_to_disk`; streaming moves its
Arrow files in as `shard-*.arrow` instead) and `stats.json`
(the truncation counts, which the report needs and which cannot be recomputed from truncated rows). The key is
a sha256 over everything that decides the tokens: the bytes of every data file, the data settings that shape
rows, the tokenizer (its serialized Rust tokenizer and special tokens), the chat template and
`CACHE_FORMAT_VERSION`. An entry is written under a staging name and renamed into place (`atomic.py`), so a
killed run never leaves a half entry that a later run would trust.

Training reads an entry memory-mapped through `TokenizedRows`, a read-only sequence of `TokenizedExample`
with the row lengths as an int array: batching needs only the lengths, and a batch fetches its rows by index.
`datasets` is imported where it is used (start-up time, as in `tokenize`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from tunesmith.atomic import recover_folder, staged_folder
from tunesmith.config.schema import DataConfig
from tunesmith.data.example import Example
from tunesmith.data.readers import data_file_paths
from tunesmith.data.tokenize import (
    TokenizedExample,
    TruncationStats,
    no_progress_bars,
    tokenize_examples,
    tokenize_to_dataset,
)
from tunesmith.json_files import read_json, write_json
from tunesmith.models.fingerprint import tokenizer_fingerprint
from tunesmith.models.provision import cache_dir

log = logging.getLogger("tunesmith")

CACHE_FORMAT_VERSION = 2
"""Raise when the stored columns or the tokenization rules change: old entries then stop matching."""

ROW_SHAPING_FIELDS = (
    "train", "validation", "test", "path", "sources", "format", "columns", "label_names", "instruction",
    "system_prompt", "split", "max_train_rows", "max_eval_rows", "loss_on", "max_length", "streaming",
)
"""`data.*` settings that change which rows exist or what their tokens are (paths too: rows carry FILE:LINE)."""

_HASH_CHUNK = 1 << 20


def tokenized_cache_root() -> Path:
    return cache_dir() / "tokenized"


# ---- the key ----------------------------------------------------------------------------------------------------


def hash_file(digest, path: Path) -> None:
    digest.update(f"{path}\0".encode())
    if not path.is_file():  # reading it will fail with a proper DataError; the key just has to differ
        digest.update(b"<missing>")
        return
    with path.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)


def examples_fingerprint(examples: list[Example]) -> str:
    """sha256 of the rows, in order: every field of each (conversation, location, label, target, meta such as
    a row's several references, which scoring reads; a preference pair's rejected answer). Why besides the files:
    a caller can hand `train` any `Splits` (tests, notebooks), and rows that do not come from the configured files
    must not hit an entry made from them. One pass of sha256 over the rows' JSON: small beside tokenizing them."""
    digest = hashlib.sha256()
    for start in range(0, len(examples), 10_000):
        # A pair's rejected answer only when there is one: the keys of every other row stay as they were.
        chunk = [[example.location, example.messages, example.label, example.target, example.meta]
                 + ([example.rejected] if example.rejected is not None else [])
                 for example in examples[start : start + 10_000]]
        digest.update(json.dumps(chunk, ensure_ascii=False, default=str).encode())
    return digest.hexdigest()


def cache_key(config: DataConfig, split: str, tokenizer, examples: list[Example] | None = None) -> str:
    """The entry name of one split's tokenized rows. ``examples``: the rows in memory, when there are some (not
    when streaming, where the file bytes stand for them)."""
    digest = hashlib.sha256()
    digest.update(f"tunesmith-tokenized-v{CACHE_FORMAT_VERSION}\0{split}\0".encode())
    settings = config.model_dump(mode="json", include=set(ROW_SHAPING_FIELDS))
    digest.update(json.dumps(settings, sort_keys=True).encode())
    digest.update(tokenizer_fingerprint(tokenizer).encode())
    for path in data_file_paths(config):
        hash_file(digest, path)
    if examples is not None:
        digest.update(examples_fingerprint(examples).encode())
    return digest.hexdigest()[:32]


# ---- reading and writing entries ----------------------------------------------------------------------------------


class TokenizedRows(Sequence):
    """A tokenized Arrow dataset seen as a read-only list of `TokenizedExample` (memory-mapped: a row is read
    when it is asked for). ``lengths`` is every row's token count, without reading any token."""

    def __init__(self, dataset):
        self.dataset = dataset
        self.lengths = numpy_column(dataset, "length")

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        row = self.dataset[int(index)]
        return TokenizedExample(input_ids=row["input_ids"], labels=row["labels"], location=row["location"],
                                truncated=row["truncated"], supervised_lost=row["supervised_lost"])

    def with_supervision(self) -> "TokenizedRows":
        """The rows that keep at least one supervised token (truncation can cut a whole answer)."""
        supervised = numpy_column(self.dataset, "num_supervised")
        keep = np.flatnonzero(supervised > 0)
        return self if len(keep) == len(self) else TokenizedRows(self.dataset.select(keep))


def numpy_column(dataset, name: str) -> np.ndarray:
    """One column as a numpy array, straight from Arrow: `np.asarray(dataset[name])` goes row by row
    (measured 44 s for 1,000,000 ints, against 1 ms this way)."""
    return dataset.select_columns([name]).with_format("arrow")[:][name].to_numpy()


def keep_supervised(rows):
    """Drop rows without a supervised token, from a list or a `TokenizedRows`."""
    if isinstance(rows, TokenizedRows):
        return rows.with_supervision()
    return [row for row in rows if row.num_supervised > 0]


def row_lengths(rows) -> Sequence[int]:
    return rows.lengths if isinstance(rows, TokenizedRows) else [len(row.input_ids) for row in rows]


def stats_of_dataset(dataset) -> TruncationStats:
    """Truncation counts from a tokenized dataset's small columns (no token is read)."""
    truncated, lost, supervised = (numpy_column(dataset, name) for name in ("truncated", "supervised_lost",
                                                                             "num_supervised"))
    return TruncationStats(rows=len(dataset), truncated_rows=int(truncated.sum()),
                           supervised_tokens_lost=int(lost.sum()),
                           rows_without_supervision=int((supervised == 0).sum()))


def _drop_damaged(folder: Path) -> None:
    """Remove an entry left incomplete by an older writer (no stats.json), which would keep a new one out."""
    if folder.is_dir() and not (folder / "stats.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)


def load_entry(folder: Path) -> tuple[TokenizedRows, TruncationStats] | None:
    """A finished cache entry, or None when there is none (a half-written one never has this name)."""
    import datasets

    recover_folder(folder)
    if not (folder / "stats.json").is_file():
        return None
    stats = TruncationStats(**read_json(folder / "stats.json"))
    shards = sorted(folder.glob("shard-*.arrow"))  # an entry written by streaming (`move_arrow_entry`)
    if shards:
        dataset = datasets.concatenate_datasets([datasets.Dataset.from_file(str(shard)) for shard in shards])
    else:
        dataset = datasets.load_from_disk(str(folder / "dataset"))
    return TokenizedRows(dataset), stats


def write_entry(folder: Path, dataset, stats: TruncationStats) -> None:
    """Save ``dataset`` and ``stats`` as one entry that appears whole or not at all. Processes that tokenize the
    same rows at once (sweep workers on a cold cache) write the same entry: the first one published stays."""
    _drop_damaged(folder)
    with staged_folder(folder, first_wins=True) as staging, no_progress_bars():
        dataset.save_to_disk(str(staging / "dataset"))
        write_json(staging / "stats.json", asdict(stats))


def move_arrow_entry(folder: Path, arrow_files: list[Path], stats: TruncationStats) -> None:
    """Make an entry of Arrow files already on disk (streaming's output) by moving them, not copying: a
    `save_to_disk` copy would write every row a second time and page the whole dataset through memory."""
    _drop_damaged(folder)
    with staged_folder(folder, first_wins=True) as staging:
        for index, arrow_file in enumerate(arrow_files):
            arrow_file.rename(staging / f"shard-{index:05d}.arrow")
        write_json(staging / "stats.json", asdict(stats))


def tokenized_split(
    config: DataConfig, split: str, examples: list[Example], tokenizer
) -> tuple[Sequence[TokenizedExample], TruncationStats]:
    """The tokenized rows of one split: from the cache when an entry with the same key exists, else tokenized
    (on `data.num_proc` processes for big splits) and stored. ``data.cache: false`` always tokenizes and
    stores nothing."""
    if not examples:
        return [], TruncationStats()
    if not config.cache:
        return tokenize_examples(examples, tokenizer, config.max_length, config.loss_on, config.num_proc)
    folder = tokenized_cache_root() / cache_key(config, split, tokenizer, examples)
    cached = load_entry(folder)
    if cached is not None:
        log.info("loaded %d tokenized %s rows from cache (%s)", len(cached[0]), split, folder)
        return cached
    started = time.perf_counter()
    dataset = tokenize_to_dataset(examples, tokenizer, config.max_length, config.loss_on, config.num_proc)
    stats = stats_of_dataset(dataset)
    write_entry(folder, dataset, stats)
    log.info("tokenized %d %s rows in %.1f s (cached at %s)", len(dataset), split,
             time.perf_counter() - started, folder)
    stored = load_entry(folder)
    return (stored[0] if stored else TokenizedRows(dataset)), stats
