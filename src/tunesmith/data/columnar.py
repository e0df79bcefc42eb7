"""Parquet files and `datasets.save_to_disk` folders: columnar, so read batch by batch (a row's line is its index
+ 1); part of `tunesmith.data.readers`, which reads every data path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tunesmith.data.rows import Row
from tunesmith.errors import DataError

_BATCH_ROWS = 1_000


def iter_parquet(path: Path) -> Iterator[Row]:
    file = str(path)
    try:
        parquet = pq.ParquetFile(path)
        batches = parquet.iter_batches(batch_size=_BATCH_ROWS)
        index = 0
        for batch in batches:
            for record in batch.to_pylist():
                index += 1
                yield Row(file, index, record)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(file, None, f"not a readable Parquet file: {exc}") from None


def iter_saved_dataset(folder: Path) -> Iterator[Row]:
    dataset = load_saved_dataset(folder)
    file = str(folder)
    index = 0
    for batch in dataset.iter(batch_size=_BATCH_ROWS):
        columns = list(batch)
        for values in zip(*(batch[name] for name in columns)):
            index += 1
            yield Row(file, index, dict(zip(columns, values)))


def load_saved_dataset(folder: Path):
    """The `datasets.Dataset` in a `save_to_disk` folder: the folder's dataset, or the `train` split of a
    saved `DatasetDict` (its other splits are subfolders: `folder/validation`)."""
    import datasets  # here, not at the top: ~0.7 s to import, which reading a JSONL file does not need

    file = str(folder)
    try:
        loaded = datasets.load_from_disk(file)
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise DataError(
            file, None, f"is a folder but not one written by datasets.save_to_disk ({' '.join(str(exc).split())})",
            "give a data file, a glob such as folder/*.jsonl, or a save_to_disk folder",
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        if "train" not in loaded:
            splits = ", ".join(loaded) or "(none)"
            raise DataError(
                file, None, f"this saved DatasetDict has no `train` split (its splits: {splits})",
                f"name the split in the path, e.g. {folder / next(iter(loaded), 'train')}",
            )
        return loaded["train"]
    return loaded
