"""`tunesmith data check`: what the data looks like to the model, and what is wrong with it, before training.

The report counts rows and tokens per split and finds rows that would silently hurt a run: truncated rows,
empty answers, exact duplicates within a split, and validation/test rows whose prompt is also in train.
Every finding points at its rows as ``FILE:LINE``. A row that cannot be read at all stops the check with its
`DataError` instead (exit 2); findings give exit 1; clean data gives exit 0.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tunesmith.config.schema import DataConfig
from tunesmith.data.example import Example, Splits
from tunesmith.data.formats import convert_rows
from tunesmith.data.readers import read_rows
from tunesmith.data.splits import load_splits
from tunesmith.data.tokenize import tokenize_examples

MAX_LOCATIONS = 20
"""Rows named per finding; the count always covers all of them."""

CONFIG_SUFFIXES = (".yaml", ".yml")


@dataclass
class SplitSummary:
    name: str
    rows: int
    file: str | None
    tokens: dict[str, float] | None
    """min/mean/median/p95/max tokens per row before truncation; None for an empty split."""
    truncated_rows: int = 0
    supervised_tokens_lost: int = 0
    rows_without_supervision: int = 0
    """Rows whose whole answer lies past ``max_length``: they teach nothing."""
    label_counts: dict[str, int] | None = None
    label_fractions: dict[str, float] | None = None


@dataclass
class Finding:
    kind: str
    """``truncated``, ``empty_output``, ``duplicate`` or ``overlap``."""
    split: str
    """The split it is in, or ``train/test``-style for overlaps."""
    count: int
    message: str
    locations: list[str] = field(default_factory=list)
    """Up to `MAX_LOCATIONS` rows, each starting with ``FILE:LINE``."""


@dataclass
class DataReport:
    format: str
    labels: list[str] | None
    max_length: int
    loss_on: str
    splits: list[SplitSummary]
    findings: list[Finding]

    @property
    def has_problems(self) -> bool:
        return bool(self.findings)

    def to_dict(self) -> dict:
        """A JSON-able summary (the run writes it to ``data_summary.json``); ``splits`` maps each split's name to
        its summary, so a report can show one table row per split."""
        data = asdict(self)
        data["splits"] = {summary.pop("name"): summary for summary in data["splits"]}
        return {**data, "has_problems": self.has_problems}

    def render(self) -> str:
        """A plain-text report for a terminal or a log file."""
        labels = f", labels: {', '.join(self.labels)}" if self.labels else ""
        lines = [
            f"Data check: format {self.format}{labels}; max_length {self.max_length}, loss on {self.loss_on} tokens",
            "",
            *_table(
                ["split", "rows", "tokens min/mean/median/p95/max", "truncated", "file"],
                [[s.name, str(s.rows), _format_tokens(s.tokens), str(s.truncated_rows), s.file or ""]
                 for s in self.splits],
            ),
        ]
        if self.labels:
            lines += ["", "Label balance:", *_table(
                ["split", *self.labels],
                [[s.name, *(f"{s.label_counts[label]} ({s.label_fractions[label]:.1%})" for label in self.labels)]
                 for s in self.splits if s.label_counts is not None],
            )]
        lines += ["", f"Problems ({len(self.findings)}):" if self.findings else "No problems found."]
        for finding in self.findings:
            lines.append(f"- {finding.kind} in {finding.split}: {finding.message}")
            lines += [f"    {location}" for location in finding.locations]
            if finding.count > len(finding.locations):
                lines.append(f"    ... and {finding.count - len(finding.locations)} more")
        return "\n".join(lines)


def check_data(splits: Splits, tokenizer, max_length: int, loss_on: str = "assistant") -> DataReport:
    """Check the train/validation/test splits of a run."""
    named = {"train": splits.train, "validation": splits.validation, "test": splits.test}
    return build_report(named, splits.format, splits.labels, splits.files, tokenizer, max_length, loss_on)


def check_file(path: str | Path, tokenizer, max_length: int, config: DataConfig) -> DataReport:
    """Check one data file as it is (not split), as a split named after the file. ``config`` says how to read
    its rows (format, columns, label names, instruction, system prompt)."""
    return build_report(*read_file_as_split(path, config), tokenizer, max_length, config.loss_on)


def read_file_as_split(path: str | Path, config: DataConfig):
    """``(examples by split name, format, labels, files)`` for one unsplit file; read errors raise here."""
    name = Path(path).name
    examples, fmt, labels = convert_rows({name: read_rows(path)}, config)
    return examples, fmt, labels, {name: str(path)}


def build_report(
    named: dict[str, list[Example]], fmt: str, labels: list[str] | None, files: dict[str, str], tokenizer,
    max_length: int, loss_on: str,
) -> DataReport:
    summaries, findings = [], []
    for name, examples in named.items():
        summary, truncation = _summarize(name, examples, files.get(name), labels, tokenizer, max_length, loss_on)
        summaries.append(summary)
        findings += [f for f in (truncation, _empty_outputs(name, examples), _duplicates(name, examples)) if f]
    if "train" in named:
        for name in ("validation", "test"):
            if named.get(name):
                overlap = _overlap(named["train"], name, named[name], fmt)
                findings += [overlap] if overlap else []
    return DataReport(fmt, labels, max_length, loss_on, summaries, findings)


def _summarize(
    name: str, examples: list[Example], file: str | None, labels: list[str] | None, tokenizer, max_length: int,
    loss_on: str,
) -> tuple[SplitSummary, Finding | None]:
    tokenized, stats = tokenize_examples(examples, tokenizer, max_length, loss_on)
    lengths = [len(item.input_ids) for item in tokenized]
    truncated = [index for index, item in enumerate(tokenized) if item.truncated]
    if truncated:  # only truncated rows need a second, uncut pass to know how long they really are
        full, _ = tokenize_examples([examples[i] for i in truncated], tokenizer, sys.maxsize, loss_on)
        for index, item in zip(truncated, full):
            lengths[index] = len(item.input_ids)
    summary = SplitSummary(
        name=name, rows=len(examples), file=file, tokens=_length_stats(lengths),
        truncated_rows=stats.truncated_rows, supervised_tokens_lost=stats.supervised_tokens_lost,
        rows_without_supervision=stats.rows_without_supervision,
    )
    if labels:
        counts = Counter(example.label for example in examples)
        summary.label_counts = {label: counts[label] for label in labels}
        summary.label_fractions = {
            label: round(counts[label] / len(examples), 4) if examples else 0.0 for label in labels
        }
    finding = None
    if stats.truncated_rows:
        finding = Finding(
            "truncated", name, stats.truncated_rows,
            f"{_rows(stats.truncated_rows)} longer than max_length {max_length}: {stats.supervised_tokens_lost} "
            "supervised tokens cut"
            + (f" ({_rows(stats.rows_without_supervision)} left with none)" if stats.rows_without_supervision else "")
            + "; raise data.max_length or shorten these rows",
            [examples[index].source for index in truncated[:MAX_LOCATIONS]],
        )
    return summary, finding


def _length_stats(lengths: list[int]) -> dict[str, float] | None:
    if not lengths:
        return None
    values = np.asarray(lengths, dtype=float)
    return {
        "min": int(values.min()), "mean": round(float(values.mean()), 1), "median": float(np.median(values)),
        "p95": round(float(np.percentile(values, 95)), 1), "max": int(values.max()),
    }


def _empty_outputs(name: str, examples: list[Example]) -> Finding | None:
    empty = [example.source for example in examples if not example.reference.strip()]
    if not empty:
        return None
    return Finding(
        "empty_output", name, len(empty), f"{_rows(len(empty))} with an empty or whitespace-only answer",
        empty[:MAX_LOCATIONS],
    )


def _messages_key(messages) -> tuple[tuple[str, str], ...]:
    return tuple((message["role"], message["content"]) for message in messages)


def _duplicates(name: str, examples: list[Example]) -> Finding | None:
    first_seen: dict[tuple, str] = {}
    repeats = []
    for example in examples:
        key = _messages_key(example.messages)
        if key in first_seen:
            repeats.append(f"{example.source} (same as {first_seen[key]})")
        else:
            first_seen[key] = example.source
    if not repeats:
        return None
    return Finding(
        "duplicate", name, len(repeats), f"{_rows(len(repeats))} repeating an earlier row exactly",
        repeats[:MAX_LOCATIONS],
    )


def _overlap(train: list[Example], name: str, held_out: list[Example], fmt: str) -> Finding | None:
    def prompt_key(example: Example) -> tuple:
        # A plain-text row has no prompt (every prompt is the same empty turn), so compare the whole text.
        return _messages_key(example.messages if fmt == "text" else example.prompt_messages)

    train_sources: dict[tuple, str] = {}
    for example in train:
        train_sources.setdefault(prompt_key(example), example.source)
    leaked = [
        f"{example.source} (same prompt as {train_sources[prompt_key(example)]})"
        for example in held_out if prompt_key(example) in train_sources
    ]
    if not leaked:
        return None
    return Finding(
        "overlap", f"train/{name}", len(leaked),
        f"{_rows(len(leaked))} of {name} with a prompt that is also in train (their scores overstate the model)",
        leaked[:MAX_LOCATIONS],
    )


def _rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"


def _format_tokens(tokens: dict[str, float] | None) -> str:
    if tokens is None:
        return "-"
    return " / ".join(f"{tokens[key]:g}" for key in ("min", "mean", "median", "p95", "max"))


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    return ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in [header, *rows]]


def run_check(target: str, overrides: list[str], as_json: bool) -> tuple[str, int]:
    """`tunesmith data check TARGET`: ``(output text, exit code)``, exit 1 when the report has problems.

    ``TARGET`` is a run config (`.yaml`/`.yml`: its splits are checked) or one data file (checked as it is,
    read with the default config plus ``overrides``). Unreadable input raises its `TunesmithError` (exit 2).
    """
    from tunesmith.config import apply_overrides, load_config, validate_config
    from tunesmith.models import load_tokenizer

    if Path(target).suffix.lower() in CONFIG_SUFFIXES:
        config = load_config(target, overrides)
        splits = load_splits(config.data)
        tokenizer = load_tokenizer(config.model)
        report = check_data(splits, tokenizer, config.data.max_length, config.data.loss_on)
    else:
        config = validate_config(apply_overrides({"data": {"path": target}}, overrides))
        # Rows are read before the model is loaded: a broken file is reported at once.
        named, fmt, labels, files = read_file_as_split(target, config.data)
        report = build_report(named, fmt, labels, files, load_tokenizer(config.model), config.data.max_length,
                              config.data.loss_on)
    text = json.dumps(report.to_dict(), indent=2) if as_json else report.render()
    return text, 1 if report.has_problems else 0
