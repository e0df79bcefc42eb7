"""Files → train/validation/test `Splits`: read, carve missing splits with a seeded shuffle, convert, cap (and
mix `data.sources`, see `tunesmith.data.sources`)."""

from __future__ import annotations

import random

from tunesmith.config.schema import DataConfig, SplitConfig
from tunesmith.data.example import Example, Splits
from tunesmith.data.formats import convert_rows
from tunesmith.data.readers import Row, read_rows
from tunesmith.data.sources import load_source_splits
from tunesmith.errors import ConfigError

SPLITS = ("train", "validation", "test")


def load_splits(config: DataConfig, on_error=None) -> Splits:
    """Read the data files of ``config`` into examples.

    With ``data.path``, its rows are shuffled with ``split.seed`` and cut into test, validation and train by the
    ``split`` fractions. With ``data.train``, a missing validation or test file is carved out of the training
    rows the same way. Each carved split keeps file order. The label set comes from all rows read, before
    ``max_train_rows``/``max_eval_rows`` take their share, so it does not depend on the sample.

    With ``data.sources``, each source is read and split on its own and the training rows are mixed by weight
    (`tunesmith.data.sources`); the caps then apply to the mix.

    ``on_error`` (a callable taking a `DataError`) makes reading lenient, as in `read_rows`: each unreadable
    row is passed to it and left out instead of stopping the load (`tunesmith data check` lists them).
    """
    if config.sources is not None:
        mixed = load_source_splits(config, on_error)
        mixed.train = _sample(mixed.train, config.max_train_rows, config.split.seed)
        mixed.validation = mixed.validation[: config.max_eval_rows]
        mixed.test = mixed.test[: config.max_eval_rows]
        return mixed
    rows, files = _rows_by_split(config, on_error)
    examples, fmt, labels = convert_rows(rows, config, on_error=on_error)
    return Splits(
        train=_sample(examples["train"], config.max_train_rows, config.split.seed),
        validation=examples["validation"][: config.max_eval_rows],
        test=examples["test"][: config.max_eval_rows],
        format=fmt,
        labels=labels,
        files=files,
    )


def _rows_by_split(config: DataConfig, on_error=None) -> tuple[dict[str, list[Row]], dict[str, str]]:
    if config.path is not None:
        rows, carved = carve(read_rows(config.path, on_error=on_error), config.split, ["validation", "test"], source="data.path")
        return {"train": rows, **carved}, dict.fromkeys(SPLITS, config.path)
    given = {"train": config.train, "validation": config.validation, "test": config.test}
    files = {name: path for name, path in given.items() if path is not None}
    rows = {name: read_rows(path, on_error=on_error) for name, path in files.items()}
    missing = [name for name in SPLITS if name not in rows]
    if missing:
        rows["train"], carved = carve(rows["train"], config.split, missing, source="data.train")
        rows.update(carved)
        files.update(dict.fromkeys(missing, config.train))
    return {name: rows[name] for name in SPLITS}, files


def carve(
    rows: list[Row], split: SplitConfig, names: list[str], source: str
) -> tuple[list[Row], dict[str, list[Row]]]:
    """Hold out ``split.<name>`` fractions of ``rows`` for each name: ``(the rest, {name: held-out rows})``.

    One `random.Random(split.seed)` shuffle decides every row's split, so the same seed and file always give
    the same, disjoint splits. A fraction of 0 gives an empty split; a positive one must give at least one row.
    """
    total = len(rows)
    counts = {name: _share(total, getattr(split, name)) for name in names}
    for name, count in counts.items():
        fraction = getattr(split, name)
        if fraction > 0 and count == 0:
            raise ConfigError(
                f"data.split.{name}", f"{fraction} of the {total} rows of {source} is less than one row",
                f"raise it, add rows, give a {name} file, or set it to 0 to have no {name} rows",
            )
    if sum(counts.values()) >= total:
        raise ConfigError(
            "data.split", f"holding out {' + '.join(map(str, counts.values()))} rows leaves none of the {total} "
            f"rows of {source} to train on", "lower the split fractions or add rows",
        )
    order = list(range(total))
    random.Random(split.seed).shuffle(order)
    held_out: dict[str, list[Row]] = {}
    start = 0
    for name, count in counts.items():
        held_out[name] = [rows[index] for index in sorted(order[start : start + count])]
        start += count
    remaining = [rows[index] for index in sorted(order[start:])]
    return remaining, held_out


def _share(total: int, fraction: float) -> int:
    return int(total * fraction + 0.5)  # round half up: Python's round() sends 2.5 to 2


def _sample(examples: list[Example], limit: int | None, seed: int) -> list[Example]:
    """A seeded sample of at most ``limit`` examples, in their original order."""
    if limit is None or len(examples) <= limit:
        return examples
    chosen = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[index] for index in chosen]
