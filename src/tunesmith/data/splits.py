"""Files → train/validation/test `Splits`. `load_run_splits` is the entry point of every run.

Three routes, one set of rules (the format and labels always come from `fields.infer_format_and_labels`):

- ``data.path``, or ``data.train`` without a validation or test file: the rows are shuffled with ``split.seed``
  and the held-out fractions cut off (`carve`); each split keeps file order.
- ``data.sources``: each source is read with its own settings and split on its own, then the training rows are
  mixed by weight. Why each source is split on its own: a held-out split must hold rows of every source (else a
  small source could vanish from validation and test), and a source's held-out rows must not change when
  another source is added. Why weights apply to training rows only: the held-out splits measure the model on
  the data as it is, not as it was sampled for training. A ``data.validation`` or ``data.test`` file beside the
  sources is that split (read with the ``data.*`` settings), as beside ``data.train``: the sources are then cut
  only for the split without a file.
- ``data.streaming``: only the validation and test files are read here; the training file is streamed by
  `tunesmith.data.stream`.

``max_train_rows`` (a seeded sample) and ``max_eval_rows`` (the first rows) apply last, so the label set does
not depend on the sample.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from dataclasses import replace

from tunesmith.config.schema import DataConfig, SourceConfig, SplitConfig
from tunesmith.data.example import MIXED_FORMAT, Example, Splits
from tunesmith.data.fields import detect_format, infer_format_and_labels, pair_prompt_key, sort_labels
from tunesmith.data.formats import convert_rows
from tunesmith.data.readers import iter_rows, read_rows
from tunesmith.data.rows import OnError, Row
from tunesmith.data.stream import require_streamable
from tunesmith.errors import ConfigError, DataError

SPLITS = ("train", "validation", "test")


def load_run_splits(config: DataConfig) -> Splits:
    """The splits a run holds in memory: all of them, or with ``data.streaming`` only the held-out ones. Read from
    the files at every call: the stages of one run share one load through `tunesmith.data.run_inputs.RunInputs`."""
    return load_heldout_splits(config) if config.streaming else load_splits(config)


def load_splits(config: DataConfig, on_error: OnError | None = None) -> Splits:
    """Read the data files of ``config`` into examples (the ``data.path``/``data.train`` and ``data.sources``
    routes of the module docstring).

    ``on_error`` (a callable taking a `DataError`) makes reading lenient, as in `read_rows`: each unreadable
    row is passed to it and left out instead of stopping the load (`tunesmith data check` lists them).
    """
    if config.sources is not None:
        splits = _load_sources(config, on_error)
    else:
        rows, files = _rows_by_split(config, on_error)
        examples, fmt, labels = convert_rows(rows, config, on_error=on_error)
        splits = Splits(train=examples["train"], validation=examples["validation"], test=examples["test"],
                        format=fmt, labels=labels, files=files)
    splits.train = sample(splits.train, config.max_train_rows, config.split.seed)
    splits.validation = splits.validation[: config.max_eval_rows]
    splits.test = splits.test[: config.max_eval_rows]
    return splits


def load_heldout_splits(config: DataConfig) -> Splits:
    """Validation and test examples (read whole) and the task's format and labels, for ``data.streaming``;
    ``train`` stays empty: its rows are streamed by `stream.stream_train_rows`."""
    require_streamable(config)
    fmt, labels = streamed_format_and_labels(config)
    if fmt == "preference":
        raise ConfigError("data.streaming", "preference pairs are tokenized and held in memory, not streamed",
                          "turn data.streaming off")
    held_out = {name: convert_rows({name: read_rows(getattr(config, name))}, config, fmt=fmt, labels=labels)[0][name]
                for name in ("validation", "test")}
    return Splits(train=[], validation=held_out["validation"][: config.max_eval_rows],
                  test=held_out["test"][: config.max_eval_rows], format=fmt, labels=labels,
                  files={"train": config.train, "validation": config.validation, "test": config.test})


def streamed_format_and_labels(config: DataConfig) -> tuple[str, list[str] | None]:
    """`infer_format_and_labels` over the streamed files, read once and lazily: the format from the first
    training row, the label set (the default instruction names every label) from every row of all three."""
    return infer_format_and_labels(
        itertools.chain.from_iterable(iter_rows(path) for path in (config.train, config.validation, config.test)),
        config)


def _rows_by_split(config: DataConfig, on_error: OnError | None) -> tuple[dict[str, list[Row]], dict[str, str]]:
    if config.path is not None:
        read = read_rows(config.path, on_error)
        rows, carved = carve(read, config.split, ["validation", "test"], "data.path", pair_groups(read, config))
        return {"train": rows, **carved}, dict.fromkeys(SPLITS, config.path)
    given = {"train": config.train, "validation": config.validation, "test": config.test}
    files = {name: path for name, path in given.items() if path is not None}
    rows = {name: read_rows(path, on_error) for name, path in files.items()}
    missing = [name for name in SPLITS if name not in rows]
    if missing:
        rows["train"], carved = carve(rows["train"], config.split, missing, "data.train",
                                      pair_groups(rows["train"], config))
        rows.update(carved)
        files.update(dict.fromkeys(missing, config.train))
    return {name: rows[name] for name in SPLITS}, files


# ---- data.sources -----------------------------------------------------------------------------------------------


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


def _load_sources(config: DataConfig, on_error: OnError | None) -> Splits:
    """Read, split, convert and mix every source. Each source's rows are cut into train and the held-out splits
    without a file of their own (``data.validation``, ``data.test``) by ``data.split`` (seeded, per source), then
    its training rows are weighted (`weight_rows`). The label set of every classification source and held-out file
    is ``data.label_names``, else the union of theirs, so the instruction and evaluation name the same labels.
    ``Splits.sources`` records each source's counts, keyed by its path."""
    assert config.sources is not None
    files = {name: getattr(config, name) for name in ("validation", "test") if getattr(config, name) is not None}
    carved = [name for name in ("validation", "test") if name not in files]
    read = []
    for index, source in enumerate(config.sources):
        settings = source_config(config, source)
        rows = read_rows(source.path, on_error)
        fmt, labels = infer_format_and_labels(rows, settings, lenient=on_error is not None)
        train, held_out = carve(rows, config.split, carved, f"data.sources[{index}].path",
                                pair_groups(rows, settings, fmt))
        read.append((source, settings, fmt, labels, len(rows), {"train": train, **held_out}))
    # A held-out file is read as `data.train` reads one: in the sources' format when they share one.
    formats = {fmt for _, _, fmt, _, _, _ in read}
    given = {}
    for name, path in files.items():
        rows = read_rows(path, on_error)
        settings = config if len(formats) > 1 else config.model_copy(update={"format": next(iter(formats))})
        fmt, labels = infer_format_and_labels(rows, settings, lenient=on_error is not None)
        given[name] = (settings, fmt, labels, rows)
    found = [labels for _, _, fmt, labels, _, _ in read if fmt == "classification"]
    found += [labels for _, fmt, labels, _ in given.values() if fmt == "classification"]
    shared = list(config.label_names) if config.label_names else (sort_labels(set().union(*found)) if found else None)

    merged: dict[str, list[Example]] = {name: [] for name in SPLITS}
    counts: dict[str, dict] = {}
    for index, (source, settings, fmt, _, total, rows) in enumerate(read):
        labels = shared if fmt == "classification" else None
        examples, _, _ = convert_rows(rows, settings, on_error=on_error, fmt=fmt, labels=labels)
        weighted = weight_rows(examples["train"], source.weight, f"{config.split.seed}:{index}")
        merged["train"] += weighted
        for name in carved:
            merged[name] += examples[name]
        counts[_unique_key(source.path, counts)] = {
            "format": fmt, "weight": source.weight, "rows": total, "train": len(examples["train"]),
            "train_weighted": len(weighted), "validation": len(examples.get("validation", [])),
            "test": len(examples.get("test", [])),
        }
    for name, (settings, fmt, _, rows) in given.items():
        labels = shared if fmt == "classification" else None
        merged[name] = convert_rows({name: rows}, settings, on_error=on_error, fmt=fmt, labels=labels)[0][name]
    if not merged["train"]:
        raise ConfigError("data.sources", "the weights leave no training rows", "give a source a weight above 0")
    formats = {entry["format"] for entry in counts.values()}
    paths = ", ".join(source.path for source in config.sources)
    return Splits(
        train=merged["train"], validation=merged["validation"], test=merged["test"],
        format=formats.pop() if len(formats) == 1 else MIXED_FORMAT,
        labels=shared, files={**dict.fromkeys(SPLITS, paths), **files}, sources=counts,
    )


def _unique_key(path: str, taken: dict) -> str:
    key, number = path, 2
    while key in taken:
        key, number = f"{path}#{number}", number + 1
    return key


# ---- seeded selection: pure functions of their arguments -------------------------------------------------------


def carve(rows: list[Row], split: SplitConfig, names: list[str], where: str,
          group: Callable[[Row], str] | None = None) -> tuple[list[Row], dict[str, list[Row]]]:
    """Hold out ``split.<name>`` fractions of ``rows`` for each name: ``(the rest, {name: held-out rows})``.

    One `random.Random(split.seed)` shuffle decides every row's split, so the same seed and file always give
    the same, disjoint splits. A fraction of 0 gives an empty split; a positive one must give at least one row.
    ``where`` names the rows' config key in errors. With ``group`` (`pair_groups`) the rows of one group move
    together: the shuffle orders the groups, and a held-out split takes whole groups until it has its share of
    rows (so it may hold a few more). Why: the pairs of one prompt in train and test would let a model score
    on a prompt it trained on.
    """
    total = len(rows)
    counts = {name: _share(total, getattr(split, name)) for name in names}
    for name, count in counts.items():
        fraction = getattr(split, name)
        if fraction > 0 and count == 0:
            raise ConfigError(
                f"data.split.{name}", f"{fraction} of the {total} rows of {where} is less than one row",
                f"raise it, add rows, give a {name} file, or set it to 0 to have no {name} rows",
            )
    if sum(counts.values()) >= total:
        raise ConfigError(
            "data.split", f"holding out {' + '.join(map(str, counts.values()))} rows leaves none of the {total} "
            f"rows of {where} to train on", "lower the split fractions or add rows",
        )
    # One unit per row without groups: the shuffle is then exactly the ungrouped one, row by row.
    units = list(_groups(rows, group).values()) if group is not None else [[index] for index in range(total)]
    order = list(range(len(units)))
    random.Random(split.seed).shuffle(order)
    held_out: dict[str, list[Row]] = {}
    start = 0
    for name, count in counts.items():
        taken: list[int] = []
        while len(taken) < count and start < len(order):
            taken += units[order[start]]
            start += 1
        held_out[name] = [rows[index] for index in sorted(taken)]
    remaining = [rows[index] for index in sorted(index for unit in order[start:] for index in units[unit])]
    if not remaining:
        raise ConfigError(
            "data.split", f"the {len(units)} prompts of {where} cannot be held out without leaving none to train on "
            "(the pairs of one prompt stay in one split)", "lower the split fractions or add prompts")
    return remaining, held_out


def _groups(rows: list[Row], group: Callable[[Row], str]) -> dict[str, list[int]]:
    """Row indices by group, the groups in order of their first row."""
    found: dict[str, list[int]] = {}
    for index, row in enumerate(rows):
        found.setdefault(group(row), []).append(index)
    return found


def pair_groups(rows: list[Row], config: DataConfig, fmt: str | None = None) -> Callable[[Row], str] | None:
    """How `carve` groups ``rows``: by prompt for preference rows (``fmt``, else ``data.format``, else detected
    from the first row whose format can be told), not at all for other formats."""
    if fmt is None:
        fmt = config.format if config.format != "auto" else next(
            (found for row in rows if (found := _format_or_none(row, config.columns))), None)
    if fmt != "preference":
        return None
    return lambda row: pair_prompt_key(row, config.columns)


def _format_or_none(row: Row, columns: dict[str, str]) -> str | None:
    try:
        return detect_format(row, columns)
    except DataError:
        return None  # converting the row reports it


def _share(total: int, fraction: float) -> int:
    return int(total * fraction + 0.5)  # round half up: Python's round() sends 2.5 to 2


def sample(examples: list[Example], limit: int | None, seed: int) -> list[Example]:
    """A seeded sample of at most ``limit`` examples, in their original order."""
    if limit is None or len(examples) <= limit:
        return examples
    chosen = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[index] for index in chosen]


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
