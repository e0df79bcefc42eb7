"""Several datasets in one run (`data.sources`): each read with its own format and columns, split on its own,
then mixed by weight.

Why each source is split on its own: a held-out split must hold rows of every source (else a small source
could vanish from validation and test), and a source's held-out rows must not change when another source is
added. Why weights apply to training rows only: the held-out splits measure the model on the data as it is,
not as it was sampled for training.
"""

from __future__ import annotations

import math
import random
from dataclasses import replace

from tunesmith.config.schema import DataConfig, SourceConfig
from tunesmith.data.example import Example, Splits
from tunesmith.data.formats import convert_rows, detect_format, label_of, sort_labels
from tunesmith.data.readers import Row, read_rows
from tunesmith.errors import ConfigError

MIXED_FORMAT = "mixed"
"""`Splits.format` when the sources have different formats (evaluated as generation)."""


def source_config(config: DataConfig, source: SourceConfig) -> DataConfig:
    """The `data` settings one source is read with: its own format, columns, system prompt and instruction,
    falling back to the `data.*` values (columns are merged: the source's mapping wins)."""
    return config.model_copy(update={
        "format": config.format if source.format == "auto" else source.format,
        "columns": {**config.columns, **source.columns},
        "system_prompt": config.system_prompt if source.system_prompt is None else source.system_prompt,
        "instruction": config.instruction if source.instruction is None else source.instruction,
        "sources": None, "path": source.path,
    })


def load_source_splits(config: DataConfig, on_error=None) -> Splits:
    """Read, split, convert and mix every source of ``data.sources`` (see the module docstring).

    Each source's rows are cut into train/validation/test by ``data.split`` (seeded, per source). Its training
    rows are then weighted: weight ``w`` gives ``floor(w)`` copies of every row plus a seeded sample of
    ``frac(w)`` of them. The classification label set is ``data.label_names``, else the union over the
    sources. ``Splits.sources`` records each source's counts, keyed by its path.
    """
    from tunesmith.data.splits import SPLITS, carve  # splits imports this module

    assert config.sources is not None
    read = []
    for index, source in enumerate(config.sources):
        settings = source_config(config, source)
        rows = read_rows(source.path, on_error=on_error)
        if settings.format == "auto":
            settings = settings.model_copy(update={"format": detect_format(rows[0], settings.columns)})
        train, held_out = carve(rows, config.split, ["validation", "test"], source=f"data.sources[{index}].path")
        read.append((source, settings, len(rows), {"train": train, **held_out}))

    labels = _label_union(config, [(settings, rows) for _, settings, _, rows in read])
    merged: dict[str, list[Example]] = {name: [] for name in SPLITS}
    counts: dict[str, dict] = {}
    for index, (source, settings, total, rows) in enumerate(read):
        source_labels = labels if settings.format == "classification" else None
        examples, fmt, _ = convert_rows(rows, settings, labels=source_labels, on_error=on_error)
        weighted = weight_rows(examples["train"], source.weight, f"{config.split.seed}:{index}")
        merged["train"] += weighted
        merged["validation"] += examples["validation"]
        merged["test"] += examples["test"]
        counts[_unique_key(source.path, counts)] = {
            "format": fmt, "weight": source.weight, "rows": total, "train": len(examples["train"]),
            "train_weighted": len(weighted), "validation": len(examples["validation"]),
            "test": len(examples["test"]),
        }
    if not merged["train"]:
        raise ConfigError("data.sources", "the weights leave no training rows", "give a source a weight above 0")

    formats = {entry["format"] for entry in counts.values()}
    paths = ", ".join(source.path for source in config.sources)
    return Splits(
        train=merged["train"], validation=merged["validation"], test=merged["test"],
        format=formats.pop() if len(formats) == 1 else MIXED_FORMAT,
        labels=labels, files=dict.fromkeys(SPLITS, paths), sources=counts,
    )


def weight_rows(examples: list[Example], weight: float, seed: str) -> list[Example]:
    """``floor(weight)`` copies of ``examples`` plus a seeded sample of ``frac(weight)`` of them (rounded to
    whole rows, kept in file order). Repeats carry ``meta["mix_copy"]`` (1, 2, ...) so a data check can tell a
    deliberate repeat from a duplicate in the file."""
    whole = math.floor(weight)
    extra = int(len(examples) * (weight - whole) + 0.5)
    result = []
    for copy in range(whole):
        result += examples if copy == 0 else [_repeat(example, copy) for example in examples]
    if extra:
        chosen = sorted(random.Random(f"tunesmith-mix:{seed}").sample(range(len(examples)), extra))
        result += [examples[index] if whole == 0 else _repeat(examples[index], whole) for index in chosen]
    return result


def _repeat(example: Example, copy: int) -> Example:
    return replace(example, meta={**example.meta, "mix_copy": copy})


def _label_union(config: DataConfig, sources: list[tuple[DataConfig, dict[str, list[Row]]]]) -> list[str] | None:
    """One label set for every classification source, so the instruction and evaluation name the same labels."""
    classification = [(settings, rows) for settings, rows in sources if settings.format == "classification"]
    if not classification:
        return None
    if config.label_names:
        return list(config.label_names)
    found = {label_of(row, settings) for settings, rows in classification for split in rows.values() for row in split}
    return sort_labels(found)


def _unique_key(path: str, taken: dict) -> str:
    key, number = path, 2
    while key in taken:
        key, number = f"{path}#{number}", number + 1
    return key
