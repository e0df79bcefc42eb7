"""`tunesmith init DATA`: write a commented config that runs as written, so a newcomer starts from their data
rather than from a blank file.

The format and labels come from where `data check` and a run get them (`fields.infer_format_and_labels`, then
`convert_rows` over every row), so `init` detects nothing a run would not, and a bad row is the same one-line
``FILE:LINE`` error. What this module adds is what a config needs beyond detection: a `data.columns` mapping
when the keys have common names that are not tunesmith's (`sms`, `category`), names for integer labels,
`data.max_length` from the rows' token counts, and validation and checkpoint intervals sized to the data.

Each key's comment is the first sentence of its docstring in the schema (`tunesmith.config.reference.key_summary`),
so the comments say what the code's documentation says, followed by a note on the value written here.
"""

from __future__ import annotations

import math
import sys
import textwrap
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tunesmith.atomic import write_atomic
from tunesmith.config import RunConfig, validate_config
from tunesmith.config.reference import key_summary
from tunesmith.config.schema import DataConfig, ModelConfig
from tunesmith.config.vocabulary import ALWAYS_REPORTED, ROW_FORMATS, TASK_METRICS, task_of
from tunesmith.data.check.data_report import CONFIG_SUFFIXES
from tunesmith.data.example import Example
from tunesmith.data.fields import detect_format, infer_format_and_labels, key_of, target_key, text_key
from tunesmith.data.formats import convert_rows
from tunesmith.data.readers import read_rows
from tunesmith.data.rows import Row
from tunesmith.data.splits import carve, sample
from tunesmith.data.tokenize import tokenize_examples
from tunesmith.errors import ConfigError, DataError
from tunesmith.models import load_tokenizer
from tunesmith.text import count_of

COMMON_KEYS: dict[str, tuple[str, ...]] = {
    "prompt": ("question", "query", "input", "request", "source", "dialogue", "article", "document"),
    "completion": ("answer", "response", "output", "reply", "summary"),
    "text": ("sms", "message", "msg", "content", "review", "comment", "tweet", "post", "document", "body",
             "utterance", "question", "query", "input"),
    "label": ("category", "class", "sentiment", "intent", "topic", "tag", "y"),
}
"""Key names (compared case-insensitively) read as one of tunesmith's fields when the row lacks that field.
A prompt/answer pair is tried first: `{question, answer}` is a generation task, `{question, intent}` a
classification."""
LABEL_NAME_KEYS = ("{label}_text", "{label}_name", "label_text", "label_name")
"""Keys that may name integer labels row by row (Hugging Face datasets write `label_text` beside `label`)."""

COMMENT_WIDTH = 110
"""Comment lines are wrapped to this width (the YAML stays readable in an 120-column editor)."""
LENGTH_PERCENTILE = 99
LENGTH_MULTIPLE = 64
MAX_LENGTH_CAP = 2048
"""Tokens per sequence at most, whatever the rows: memory and time grow with it, and the rare longer row is
truncated and counted rather than sizing every batch."""
LENGTH_SAMPLE_ROWS = 10_000
"""Rows tokenized to size `data.max_length` (a seeded sample of larger files): a percentile needs no more."""
SYSTEM_PROMPT_EXAMPLE = "You are a concise, accurate assistant."


@dataclass(frozen=True)
class Setting:
    """One key of the written config: its value and the note that follows the schema's summary of the key."""

    key: str
    """Dotted, as in `--set` (`data.split.test`)."""
    value: Any
    note: str
    example: bool = False
    """Written commented out: a suggestion, not a setting."""


@dataclass
class StarterConfig:
    """What `write_starter_config` found in the data and wrote."""

    path: Path
    text: str
    """The config as written."""
    rows: dict[str, int]
    """Rows of DATA (and of TEST) by file."""
    format: str
    keys: list[str]
    """The first row's keys."""
    columns: dict[str, str]
    """The `data.columns` mapping written ({} when the keys are tunesmith's own)."""
    fields: dict[str, str]
    """Which key holds the text and the label or target (classification, regression, text), e.g.
    ``{"text": "sms", "label": "category"}``."""
    label_counts: dict[str, dict[str, int]] | None
    """Rows per label name, by file (classification)."""
    max_length: int
    length_percentile: int
    """Tokens per row at the `LENGTH_PERCENTILE`th percentile (the default model's tokenizer)."""

    def render(self) -> str:
        """What `tunesmith init` prints: what was detected, and the next command."""
        lines = ["; ".join(f"{file}: {count_of(rows, 'row')}" for file, rows in self.rows.items()),
                 f"format: {self.format} (the first row's keys: {', '.join(self.keys)})"]
        if self.fields:
            how = "guessed from common names, set in data.columns" if self.columns else "tunesmith's own names"
            lines.append(f"columns: {_describe_fields(self.fields)} ({how})")
        for file, counts in (self.label_counts or {}).items():
            lines.append(f"labels in {file}: " + ", ".join(f"{label} {count}" for label, count in counts.items()))
        lines += [f"max_length: {self.max_length} ({LENGTH_PERCENTILE}% of rows have at most "
                  f"{self.length_percentile} tokens with the default model's tokenizer)",
                  f"wrote {self.path}",
                  f"next: tunesmith data check {self.path}   then: tunesmith run {self.path}"]
        return "\n".join(lines)


def write_starter_config(data_path: str | Path, test_path: str | Path | None = None,
                         out_path: str | Path = "config.yaml", overwrite: bool = False) -> StarterConfig:
    """Detect the format, columns and labels of ``data_path`` (and ``test_path``, the test set; without it a
    fraction of DATA is held out) and write a commented config for them to ``out_path`` (atomically; an existing
    file only with ``overwrite``). A row that cannot be read raises its `DataError` (``FILE:LINE: problem``)."""
    out = Path(out_path)
    _check_out(out, overwrite)  # before the data is read: a wrong --out fails at once
    files = {"data": str(data_path), **({"test": str(test_path)} if test_path is not None else {})}
    rows = {split: read_rows(path) for split, path in files.items()}
    first = rows["data"][0]
    columns = guess_columns(first)
    paths = {"train": files["data"], "test": files["test"]} if test_path is not None else {"path": files["data"]}
    every_row = [row for split_rows in rows.values() for row in split_rows]
    fmt, labels = infer_format_and_labels(every_row, DataConfig(**paths, columns=columns))
    label_names, named_by = (integer_label_names(every_row, labels, key_of("label", columns))
                             if fmt == "classification" else (None, None))
    data = DataConfig(**paths, format=fmt, columns=columns, label_names=label_names)
    examples, _, labels = convert_rows(rows, data)  # every row, as a run reads it

    held_out = ["validation"] if test_path is not None else ["validation", "test"]
    train_rows, carved = carve(rows["data"], data.split, held_out, "data.train" if test_path else "data.path")
    every_example = [example for split_examples in examples.values() for example in split_examples]
    lengths = _token_lengths(every_example)
    percentile, max_length = choose_max_length(lengths)
    sizes = {"rows": len(rows["data"]), "train": len(train_rows), **{s: len(r) for s, r in carved.items()}}
    notes = _Notes(fmt, columns, first, named_by, percentile, max_length,
                   sum(length > max_length for length in lengths), len(every_example), sizes)
    relative = {key: _path_from(out, path) for key, path in paths.items()}
    text = render_config(_settings(data.model_copy(update=relative), notes), _header(files, fmt, out))
    validate_config(yaml.safe_load(text))  # what is written loads: a mistake here never reaches the disk
    write_atomic(out, text)
    counts = None
    if labels:
        counts = {files[split]: _label_counts(split_examples, labels) for split, split_examples in examples.items()}
    return StarterConfig(out, text, {files[split]: len(split_rows) for split, split_rows in rows.items()}, fmt,
                         list(map(str, first.data)), columns, _fields(first, fmt, columns), counts, max_length,
                         percentile)


# ---- what the data says -----------------------------------------------------------------------------------------


def guess_columns(row: Row) -> dict[str, str]:
    """The `data.columns` mapping ``row`` needs, guessed from `COMMON_KEYS`; {} when tunesmith reads the row's
    keys as they are, or when no common name fits (detection's own error then says what to set)."""
    try:
        fmt = detect_format(row, {})
    except DataError:
        fmt = None
    if fmt not in (None, "text"):
        return {}
    columns = {}
    if fmt is None:
        prompt, completion = _common_key(row, "prompt"), _common_key(row, "completion")
        if prompt and completion and prompt != completion:
            return {"prompt": prompt, "completion": completion}
        text = _common_key(row, "text")
        if text is None:
            return {}
        columns["text"] = text
    # A text without a label or target would be learned as plain text; a common label name makes it a task.
    if "label" not in row.data and target_key(row, columns) is None:
        label = _common_key(row, "label")
        if label is not None:
            columns["label"] = label
    return columns


def _common_key(row: Row, field: str) -> str | None:
    by_name = {str(key).lower(): key for key in row.data}
    for name in COMMON_KEYS[field]:
        key = by_name.get(name)
        value = row.data.get(key) if key is not None else None
        wanted = (str, int, float) if field == "label" else str
        if isinstance(value, wanted) and not isinstance(value, bool):
            return key
    return None


def integer_label_names(rows: list[Row], labels: list[str] | None, label_key: str,
                        ) -> tuple[list[str] | None, str | None]:
    """``(data.label_names, the key that named them)`` for integer labels 0..n-1: the names a `LABEL_NAME_KEYS`
    key gives every row consistently, else the numbers themselves (for the user to replace with words; the
    model answers with them). ``(None, None)`` for labels that are not such integers."""
    if not labels or set(labels) != {str(index) for index in range(len(labels))}:
        return None, None
    for name_key in dict.fromkeys(template.format(label=label_key) for template in LABEL_NAME_KEYS):
        names = _names_by_label(rows, label_key, name_key)
        if names is not None and set(names) == set(labels) and len(set(names.values())) == len(names):
            return [names[str(index)] for index in range(len(labels))], name_key
    return list(labels), None


def _names_by_label(rows: list[Row], label_key: str, name_key: str) -> dict[str, str] | None:
    """Label → the one name ``name_key`` gives it in every row; None when a row lacks a name or gives another."""
    names: dict[str, str] = {}
    for row in rows:
        name = row.data.get(name_key)
        if not isinstance(name, str) or not name.strip():
            return None
        if names.setdefault(str(row.data.get(label_key)), name) != name:
            return None
    return names


def choose_max_length(lengths: list[int]) -> tuple[int, int]:
    """``(the LENGTH_PERCENTILE-th percentile of lengths, data.max_length)``: the percentile rounded up to a
    multiple of `LENGTH_MULTIPLE`, at most `MAX_LENGTH_CAP`."""
    percentile = math.ceil(np.percentile(lengths, LENGTH_PERCENTILE))
    rounded = max(LENGTH_MULTIPLE, math.ceil(percentile / LENGTH_MULTIPLE) * LENGTH_MULTIPLE)
    return percentile, min(MAX_LENGTH_CAP, rounded)


def _token_lengths(examples: list[Example]) -> list[int]:
    """Tokens per row as the default model's template and tokenizer make them, untruncated."""
    tokenizer = load_tokenizer(ModelConfig())
    # num_proc=1: a sample this size tokenizes in-process in seconds; worker processes would each load the
    # tokenizer first.
    tokenized, _ = tokenize_examples(sample(examples, LENGTH_SAMPLE_ROWS, seed=0), tokenizer, sys.maxsize,
                                     num_proc=1)
    return [len(item.input_ids) for item in tokenized]


def _label_counts(examples: list[Example], labels: list[str]) -> dict[str, int]:
    counts = Counter(example.label for example in examples)
    return {label: counts[label] for label in labels}


def _fields(row: Row, fmt: str, columns: dict[str, str]) -> dict[str, str]:
    """The keys that hold the text and the label or target of a classification, regression or text row; the
    mapping for other formats."""
    if fmt not in ("classification", "regression", "text"):
        return dict(columns)
    where = text_key(row, columns)
    fields = {"text": where if isinstance(where, str) else " + ".join(where or ())}
    if fmt == "classification":
        fields["label"] = key_of("label", columns)
    if fmt == "regression":
        fields["target"] = target_key(row, columns) or key_of("label", columns)
    return fields


def _describe_fields(fields: dict[str, str]) -> str:
    return ", ".join(f"{field} from `{key}`" for field, key in fields.items())


# ---- the config -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Notes:
    """What the notes beside the keys say about this data."""

    format: str
    columns: dict[str, str]
    first: Row
    label_names_from: str | None
    percentile: int
    max_length: int
    longer_rows: int
    """Measured rows longer than ``max_length``."""
    rows_read: int
    """Rows of every file (more than `LENGTH_SAMPLE_ROWS`: the lengths are a sample's)."""
    sizes: dict[str, int]
    """Rows of DATA, and of its train/validation(/test) splits."""


def _settings(data: DataConfig, notes: _Notes) -> list[Setting]:
    """Every key that matters for a first run, in the order written: defaults from the schema, and the values
    the data decides (`data.*`, `evaluate.*`). How long to train and how often to validate are `auto`: training
    sizes them to the rows it gets (`tunesmith.train.budget`) and logs what it chose."""
    defaults = RunConfig(data=DataConfig(path="-"))
    train = defaults.train
    task = task_of("auto", notes.format)
    settings = [
        Setting("model.name", defaults.model.name, "`default` runs offline on a CPU; a larger instruct model (e.g. "
                "`Qwen/Qwen2.5-0.5B-Instruct`) usually does better."),
        Setting("method", defaults.method, "`lora` suits a first run; `full` when adapters plateau on a small "
                "model, `qlora` for a model too large for memory (CUDA only)."),
        *_data_settings(data, notes),
        Setting("lora.r", defaults.lora.r, "Raise it (32, 64) for a harder task, at more memory."),
        Setting("lora.alpha", defaults.lora.alpha, "Usually 2 x r: keep the ratio when you change r."),
        Setting("train.learning_rate", train.learning_rate, "The usual LoRA value; lower it (1e-4) if the loss "
                "jumps, and use about 2e-5 with method full."),
        Setting("train.epochs", train.epochs, "`auto` sizes the run to the data (more epochs for a small set) and "
                "the log says what it chose; a number fixes it."),
        Setting("train.batch_size", train.batch_size, "Lower it if memory runs out, and raise "
                "train.grad_accumulation to keep the rows per step."),
        Setting("train.eval_every", train.eval_every, "`auto` validates about 10 times per run, however long."),
        Setting("train.save_every", train.save_every, "`auto` checkpoints at every validation: a resumed run "
                "(`--resume`) goes on from the last one."),
        Setting("evaluate.task", task, f"What the {notes.format} format implies."
                + (" Generation decodes every test row: data.max_eval_rows caps them for a quicker first run."
                   if task == "generation" else "")),
        Setting("evaluate.metrics", list(TASK_METRICS[task]), f"All of the {task} metrics ("
                f"{' and '.join(ALWAYS_REPORTED)} are always reported); drop those you do not need."),
        Setting("output.dir", defaults.output.dir, "Relative to the directory tunesmith runs in (not to this "
                "file); each run gets its own folder in it."),
    ]
    return settings


def _data_settings(data: DataConfig, notes: _Notes) -> list[Setting]:
    sizes = notes.sizes
    relative = "A relative path is read from this file's folder"
    if data.path is not None:
        settings = [
            Setting("data.path", data.path, f"{relative}; `split` holds out the validation and test rows."),
            Setting("data.split.validation", data.split.validation, f"{sizes['validation']} of the {sizes['rows']} "
                    "rows; raise it for a steadier validation loss on small data."),
            Setting("data.split.test", data.split.test, f"{sizes['test']} of the {sizes['rows']} rows: the final "
                    "metrics are computed on them."),
        ]
    else:
        settings = [
            Setting("data.train", data.train, f"{relative}; `split.validation` holds out its validation rows."),
            Setting("data.test", data.test, f"{relative}; the final metrics are computed on it."),
            Setting("data.split.validation", data.split.validation, f"{sizes['validation']} of the {sizes['rows']} "
                    "training rows; raise it for a steadier validation loss on small data."),
        ]
    keys = ", ".join(map(str, notes.first.data))
    fields = _fields(notes.first, notes.format, notes.columns)
    format_note = f"Detected from the first row's keys ({keys}): {ROW_FORMATS[notes.format][1]}."
    if fields and not notes.columns:
        format_note += f" Read: {_describe_fields(fields)}; data.columns maps other keys, e.g. {{text: your_key}}."
    settings.append(Setting("data.format", notes.format, format_note))
    if notes.columns:
        settings.append(Setting("data.columns", dict(notes.columns), f"Guessed from common key names: "
                                f"{_describe_fields(fields)}; point a field at another key to change it."))
    if data.label_names is not None:
        named = (f"From the `{notes.label_names_from}` key of each row" if notes.label_names_from
                 else "No key names the integer labels: replace these numbers with words (label 0 first)")
        settings.append(Setting("data.label_names", list(data.label_names), f"{named}; the model answers with "
                                "these names."))
    settings += [
        Setting("data.system_prompt", SYSTEM_PROMPT_EXAMPLE, "Uncomment to give every conversation the same "
                "instructions (a row's own `system` key wins).", example=True),
        Setting("data.max_length", notes.max_length, _max_length_note(notes)),
    ]
    return settings


def _max_length_note(notes: _Notes) -> str:
    sampled = f", over a sample of {LENGTH_SAMPLE_ROWS} rows" if notes.rows_read > LENGTH_SAMPLE_ROWS else ""
    capped = f", capped at {MAX_LENGTH_CAP}" if notes.max_length == MAX_LENGTH_CAP else ""
    longer = (f"{count_of(notes.longer_rows, 'longer row')} {'is' if notes.longer_rows == 1 else 'are'} truncated "
              "(the data check counts them)" if notes.longer_rows else "no row is longer")
    return (f"Chosen from the data: {LENGTH_PERCENTILE}% of rows have at most {notes.percentile} tokens (the "
            f"default model's tokenizer{sampled}), rounded up to a multiple of {LENGTH_MULTIPLE}{capped}; "
            f"{longer}.")


def _header(files: dict[str, str], fmt: str, out: Path) -> list[str]:
    command = " ".join(["tunesmith init", files["data"], *(["--test", files["test"]] if "test" in files else [])])
    return [
        f"Written by `{command}` (format {fmt}).",
        "Every key that matters for a first run, with its default or a value chosen from the data; other keys keep",
        "their defaults (all keys: docs/reference/config.md). Each comment says what the key does, then",
        "why this value and when to change it.",
        f"Next: tunesmith data check {out}, then tunesmith run {out}",
    ]


def _path_from(config: Path, data: str) -> str:
    """``data`` relative to the config's folder when it lies within it (the pair then moves together), else
    absolute (a ``../../..`` path is harder to read than the path itself)."""
    target, folder = Path(data).absolute(), config.absolute().parent
    return str(target.relative_to(folder)) if target.is_relative_to(folder) else str(target)


def render_config(settings: list[Setting], header: list[str]) -> str:
    """The YAML text of ``settings``: sections opened as their keys need them, one comment line above each key
    (the schema's summary of it, then the setting's note), a blank line between top-level sections."""
    lines = [f"# {line}" for line in header]
    opened: list[str] = []
    for setting in settings:
        *sections, name = setting.key.split(".")
        shared = 0
        while shared < min(len(sections), len(opened)) and sections[shared] == opened[shared]:
            shared += 1
        if shared == 0:
            lines.append("")
        lines += [f"{'  ' * depth}{sections[depth]}:" for depth in range(shared, len(sections))]
        opened = sections
        indent = "  " * len(sections)
        entry = f"{name}: {_yaml_value(setting.value)}"
        comment = textwrap.wrap(f"{key_summary(setting.key)} {setting.note}", COMMENT_WIDTH - len(indent) - 2)
        lines += [f"{indent}# {line}" for line in comment]
        lines.append(f"{indent}# {entry}" if setting.example else f"{indent}{entry}")
    return "\n".join(lines) + "\n"


def _yaml_value(value: Any) -> str:
    """One value in YAML's flow style (a list as ``[a, b]``), quoted where YAML needs it."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, sort_keys=False,
                          width=sys.maxsize).strip()
    return text.removesuffix("\n...").strip()  # a scalar document ends with "..."


def _check_out(out: Path, overwrite: bool) -> None:
    if out.suffix.lower() not in CONFIG_SUFFIXES:
        raise ConfigError("--out", f"{out} does not end in .yaml or .yml",
                          "tunesmith tells a config from a data file by its name")
    if out.is_dir():
        raise ConfigError("--out", f"{out} is a folder", "name a file to write")
    if out.exists() and not overwrite:
        raise ConfigError("--out", f"{out} already exists; init does not replace a file unless asked",
                          "pass --overwrite to replace it, or name another file with --out")
