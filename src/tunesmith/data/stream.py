"""Streaming mode (`data.streaming: true`): training data larger than memory, tokenized in bounded memory.

Training rows are read lazily, converted and tokenized a batch at a time and written by
`datasets.Dataset.from_generator` (which flushes Arrow record batches to disk as it goes) into a tokenized
cache entry; training then reads that entry memory-mapped (`cache.TokenizedRows`). Peak memory depends on
the batch size, not on the number of rows. Validation and test rows must come from their own files (a seeded
split needs every row in memory to shuffle); `splits.load_heldout_splits` reads them whole.

With `data.cache: false` an existing entry is not reused, but the Arrow files are still written there:
training reads its rows from them.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tunesmith.config.schema import DataConfig
from tunesmith.data.cache import (
    TokenizedRows,
    cache_key,
    load_entry,
    move_arrow_entry,
    stats_of_dataset,
    tokenized_cache_root,
)
from tunesmith.data.formats import to_example
from tunesmith.data.readers import iter_rows
from tunesmith.data.rows import Row
from tunesmith.data.tokenize import TruncationStats, columns_from_rows, no_progress_bars, tokenize_batch
from tunesmith.errors import ConfigError, TunesmithError

log = logging.getLogger("tunesmith")

STREAM_BATCH_ROWS = 1_000
"""Rows converted and tokenized at a time (also the Arrow writer's batch): what bounds peak memory."""


def require_streamable(config: DataConfig) -> None:
    """Streaming reads `data.train` once, in order; anything that needs all training rows at once is refused."""
    if config.path is not None or config.sources is not None:
        raise ConfigError("data.streaming", "streaming reads one `data.train` file in order; `data.path` and "
                          "`data.sources` need every row in memory to split and mix them",
                          "set data.train, data.validation and data.test, or turn data.streaming off")
    missing = [name for name in ("validation", "test") if getattr(config, name) is None]
    if missing:
        raise ConfigError("data.streaming", f"streaming needs separate {' and '.join(missing)} files: carving "
                          "held-out rows out of a streamed training file would need all of it in memory",
                          f"set data.{missing[0]} (and the other held-out file), or turn data.streaming off")
    if config.max_train_rows is not None:
        raise ConfigError("data.streaming", "data.max_train_rows takes a seeded sample of all training rows, "
                          "which streaming cannot hold", "cut the training file, or turn data.streaming off")


def _tokenized_row_batches(config: DataConfig, fmt: str, labels: list[str] | None, tokenizer) -> Iterator[dict]:
    batch: list[Row] = []
    for row in iter_rows(config.train):
        batch.append(row)
        if len(batch) == STREAM_BATCH_ROWS:
            yield _tokenized_columns(batch, config, fmt, labels, tokenizer)
            batch = []
    if batch:
        yield _tokenized_columns(batch, config, fmt, labels, tokenizer)


def _tokenized_columns(rows: list[Row], config: DataConfig, fmt: str, labels: list[str] | None, tokenizer) -> dict:
    examples = [to_example(row, fmt, config, labels) for row in rows]
    return columns_from_rows(tokenize_batch(examples, tokenizer, config.max_length, config.loss_on))


def _generate_rows(config: DataConfig, fmt: str, labels: tuple[str, ...] | None, tokenizer) -> Iterator[dict]:
    for columns in _tokenized_row_batches(config, fmt, list(labels) if labels else None, tokenizer):
        names = list(columns)
        for values in zip(*columns.values()):
            yield dict(zip(names, values))


def stream_train_rows(config: DataConfig, fmt: str, labels: list[str] | None,
                      tokenizer) -> tuple[TokenizedRows, TruncationStats]:
    """The tokenized training rows, streamed into (or loaded from) the tokenized cache, memory-mapped.
    ``fmt`` and ``labels`` are the task's (`splits.load_heldout_splits` found them)."""
    import datasets  # here, not at the top: start-up time, as in `tokenize`

    require_streamable(config)
    folder = tokenized_cache_root() / cache_key(config, "train", tokenizer)
    if config.cache:
        cached = load_entry(folder)
        if cached is not None:
            log.info("loaded %d tokenized train rows from cache (%s)", len(cached[0]), folder)
            return cached
    started = time.perf_counter()
    features = datasets.Features({
        "input_ids": datasets.List(datasets.Value("int32")), "labels": datasets.List(datasets.Value("int32")),
        "location": datasets.Value("string"), "truncated": datasets.Value("bool"),
        "supervised_lost": datasets.Value("int64"), "num_supervised": datasets.Value("int64"),
        "length": datasets.Value("int64"),
    })
    tokenized_cache_root().mkdir(parents=True, exist_ok=True)
    # A private datasets cache: `from_generator` would otherwise reuse an older build with the same generator
    # fingerprint, whatever the file now holds.
    scratch = Path(tempfile.mkdtemp(prefix=".stream-", dir=tokenized_cache_root()))
    try:
        try:
            # `labels` as a tuple: `from_generator` splits list arguments into shards, one per worker.
            with no_progress_bars():
                dataset = datasets.Dataset.from_generator(
                    _generate_rows, features=features, cache_dir=str(scratch), writer_batch_size=STREAM_BATCH_ROWS,
                    gen_kwargs={"config": config, "fmt": fmt, "labels": tuple(labels) if labels else None,
                                "tokenizer": tokenizer},
                )
        except datasets.exceptions.DatasetGenerationError as exc:
            if isinstance(exc.__cause__, TunesmithError):  # a bad row: say which, not where datasets caught it
                raise exc.__cause__ from None
            raise
        stats = stats_of_dataset(dataset)
        move_arrow_entry(folder, [Path(file["filename"]) for file in dataset.cache_files], stats)
        del dataset
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    log.info("tokenized %d train rows in %.1f s, streaming (cached at %s)", stats.rows,
             time.perf_counter() - started, folder)
    rows, _ = load_entry(folder)
    return rows, stats
