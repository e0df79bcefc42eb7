"""`tunesmith data check`: what the data looks like to the model, and what is wrong with it, before training.

The report counts rows and tokens per split (with a token-length histogram for the run report) and runs the
finders of `tunesmith.data.check.quality`: rows truncated at ``max_length`` (and the supervised tokens lost), empty
answers, exact and near duplicates, validation/test rows leaked from train (exact or near), conflicting labels,
label imbalance, answers that copy the input, length outliers and non-printable characters. It also renders one
sample with the chat template, marks its supervised tokens, and checks the template round trip
(`tunesmith.data.check.template`). Every finding points at its rows as ``FILE:LINE``.

Unreadable rows (bad JSON, missing keys, wrong types) are listed as ``FILE:LINE: problem`` (up to
``data.check.max_errors``, the rest counted) and the readable rows are still checked. Exit codes of
`run_check`: 2 when some row could not be read (or the input cannot be used at all: then it raises), 1 when the
readable rows have findings, 0 when clean. A `tunesmith run` still stops at the first unreadable row; its data
stage is `check_run_data`.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from tunesmith.config import RunConfig, apply_overrides, load_config, validate_config
from tunesmith.config.schema import CheckConfig, DataConfig
from tunesmith.data.check.pair_checks import GoldTest, gold_test_of, pair_findings
from tunesmith.data.check.quality import (
    MAX_LOCATIONS,
    Finding,
    conflicting_labels,
    copied_inputs,
    duplicates,
    empty_outputs,
    finding,
    label_imbalance,
    leakage,
    length_outliers,
    near_duplicate_rows,
    non_printable,
    shared_instruction,
)
from tunesmith.data.check.template import template_sample
from tunesmith.data.check.tool_checks import tool_call_problems
from tunesmith.data.example import Example, Splits
from tunesmith.data.formats import convert_rows
from tunesmith.data.readers import read_rows
from tunesmith.data.rows import RowErrors
from tunesmith.data.run_inputs import RunInputs
from tunesmith.data.splits import SPLITS, load_splits
from tunesmith.data.tokenize import tokenize_examples
from tunesmith.document import Table, text_table
from tunesmith.errors import NoUsableRowsError
from tunesmith.json_files import write_json
from tunesmith.models import load_tokenizer
from tunesmith.run_dir import RunDir, locked
from tunesmith.text import count_of

__all__ = ["MAX_LOCATIONS", "CheckSettings", "DataReport", "ExamplesToCheck", "Finding", "SplitSummary", "check_data",
           "check_examples", "check_file", "check_run_data", "run_check"]

log = logging.getLogger("tunesmith")

CONFIG_SUFFIXES = (".yaml", ".yml")
HELD_OUT = ("validation", "test")
HISTOGRAM_BINS = 30
SAMPLE_CHARS = 3_000
"""The text report shows at most this much of the rendered sample (the JSON has all of it)."""


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
    length_histogram: dict[str, list] | None = None
    """Tokens per row before truncation as ``{"edges": [...], "counts": [...]}``; every split shares the edges."""


@dataclass
class DataReport:
    format: str
    labels: list[str] | None
    max_length: int
    loss_on: str
    splits: list[SplitSummary]
    findings: list[Finding]
    unreadable: list[str] = field(default_factory=list)
    """Unreadable rows as ``FILE:LINE: problem``, up to ``data.check.max_errors``."""
    unreadable_count: int = 0
    """All unreadable rows, listed or not."""
    sample: dict | None = None
    """One rendered row with its supervised spans marked (see `template_check.template_sample`)."""

    @property
    def has_problems(self) -> bool:
        return bool(self.findings) or self.unreadable_count > 0

    @property
    def exit_code(self) -> int:
        """2: some rows are unreadable; 1: the readable rows have findings; 0: clean."""
        return 2 if self.unreadable_count else 1 if self.findings else 0

    def to_dict(self) -> dict:
        """A JSON-able summary (the run writes it to ``data_summary.json``); ``splits`` maps each split's name to
        its summary, so a report can show one table row per split."""
        data = {key: value for key, value in asdict(self).items() if key not in ("findings", "sample")}
        data["splits"] = {summary.pop("name"): summary for summary in data["splits"]}
        data["findings"] = [f.to_dict() for f in self.findings]
        data["sample"] = self.sample
        return {**data, "has_problems": self.has_problems}

    def render(self) -> str:
        """A plain-text report for a terminal or a log file."""
        labels = f", labels: {', '.join(self.labels)}" if self.labels else ""
        lines = [f"Data check: format {self.format}{labels}; max_length {self.max_length}, loss on {self.loss_on} "
                 "tokens" if self.splits else "Data check: not one row can be used", ""]
        if self.unreadable_count:
            rest = "skipped; the rest is checked" if self.splits else "fix them and check again"
            lines += [f"Unreadable rows ({self.unreadable_count}, {rest}):",
                      *(f"  {error}" for error in self.unreadable)]
            if self.unreadable_count > len(self.unreadable):
                lines.append(f"  ... and {self.unreadable_count - len(self.unreadable)} more")
            lines.append("")
        if not self.splits:
            return "\n".join(lines).rstrip("\n")
        lines += text_table(Table(
            ["split", "rows", "tokens min/mean/median/p95/max", "truncated", "file"],
            [[s.name, str(s.rows), _format_tokens(s.tokens), str(s.truncated_rows), s.file or ""]
             for s in self.splits],
        ))
        if self.labels:
            lines += ["", *text_table(Table(
                ["split", *self.labels],
                [[s.name, *(f"{s.label_counts[label]} ({s.label_fractions[label]:.1%})" for label in self.labels)]
                 for s in self.splits if s.label_counts is not None],
                caption="Label balance:",
            ))]
        if self.sample:
            lines += ["", *_render_sample(self.sample)]
        if self.findings:
            lines += ["", f"Problems ({len(self.findings)}):"]
        else:
            lines += ["", "No problems found in the readable rows." if self.unreadable_count else "No problems found."]
        for item in self.findings:
            lines.append(f"- {item.kind} in {item.split}: {item.message}")
            lines += [f"    {location}" for location in item.locations]
            if item.more > 0:
                lines.append(f"    ... and {item.more} more")
        return "\n".join(lines)


@dataclass(frozen=True)
class ExamplesToCheck:
    """What `check_examples` reports on: examples grouped by split (or by file), with what the data says of them."""

    named: dict[str, list[Example]]
    """Group name (a split, or a file's name) → its examples."""
    format: str
    labels: list[str] | None
    files: dict[str, str]
    """Group name → the file its rows came from."""


@dataclass(frozen=True)
class CheckSettings:
    """How `check_examples` looks at rows: tokenized by ``tokenizer`` as training tokenizes them (up to
    ``max_length`` tokens, loss on ``loss_on`` tokens), with the thresholds of ``data.check``."""

    tokenizer: Any
    max_length: int
    loss_on: str = "assistant"
    check: CheckConfig = field(default_factory=CheckConfig)
    gold: GoldTest | None = None
    """Preference pairs only: the gold test set their prompts must stay out of (`pair_checks.gold_test_of`)."""

    @classmethod
    def of(cls, tokenizer, config: DataConfig) -> CheckSettings:
        """The settings of a run's `data` section."""
        return cls(tokenizer, config.max_length, config.loss_on, config.check)


def check_data(splits: Splits, settings: CheckSettings, unreadable: RowErrors | None = None) -> DataReport:
    """Check the train/validation/test splits of a run (``unreadable``: the rows a lenient `load_splits` left out).

    Repeats made by a source's `weight` are left out: the report is about the rows in the files, and a
    deliberate repeat is not a duplicate (`Splits.sources` has the weighted counts)."""
    examples = ExamplesToCheck(_rows_in_files(splits), splits.format, splits.labels, splits.files)
    return check_examples(examples, settings, unreadable)


def _rows_in_files(splits: Splits) -> dict[str, list[Example]]:
    """Each split without the repeats a source's `weight` made."""
    return {name: [e for e in getattr(splits, name) if not e.meta.get("mix_copy")] for name in SPLITS}


def leaked_rows(splits: Splits, split: str, threshold: float) -> set[str] | None:
    """Locations of the rows of ``split`` that the data check reports as leaked from train (the ``leakage``
    finding, all of them); None when train is not in memory (``data.streaming``)."""
    if not splits.train:
        return None
    named = _rows_in_files(splits)
    instruction = shared_instruction([e for examples in named.values() for e in examples], splits.format)
    found = leakage(named["train"], split, named[split], splits.format, instruction, threshold)
    return {location for location, _ in found.flagged} if found else set()


def check_file(path: str | Path, tokenizer, max_length: int, config: DataConfig) -> DataReport:
    """Check one data file as it is (not split), as a split named after the file. ``config`` says how to read
    its rows (format, columns, label names, instruction, system prompt) and what to look for (``check``);
    unreadable rows are listed in the report and skipped."""
    unreadable = RowErrors()
    read = read_file_as_split(path, config, unreadable)
    return check_examples(read, CheckSettings(tokenizer, max_length, config.loss_on, config.check), unreadable)


def read_file_as_split(path: str | Path, config: DataConfig, unreadable: RowErrors | None = None) -> ExamplesToCheck:
    """One unsplit file as one group, named after the file. Without ``unreadable`` the first bad row raises its
    `DataError`; with it, bad rows are collected there and skipped. A file that cannot be used at all (missing,
    unknown type, not one usable row) always raises."""
    name = Path(path).name
    examples, fmt, labels = convert_rows({name: read_rows(path, unreadable)}, config, on_error=unreadable)
    if not examples[name]:  # rows were read, but none of them converts (`read_rows` raises when none is read)
        first = min(unreadable.errors, key=lambda e: e.line or 0)
        raise NoUsableRowsError(first.file, first.line, first.problem,
                                f"no row of {path} is usable: {count_of(len(unreadable.errors), 'bad row')}")
    return ExamplesToCheck(examples, fmt, labels, {name: str(path)})


def check_examples(checked: ExamplesToCheck, settings: CheckSettings,
                   unreadable: RowErrors | None = None) -> DataReport:
    """The data report of examples grouped by split (or by file): summaries, findings, the template sample."""
    named, fmt, labels, thresholds = checked.named, checked.format, checked.labels, settings.check
    instruction = shared_instruction([e for examples in named.values() for e in examples], fmt)
    summaries, findings, lengths_by_split = [], [], {}
    for name, examples in named.items():
        summary, lengths, truncation = _summarize(name, examples, checked.files.get(name), labels, settings)
        summaries.append(summary)
        lengths_by_split[name] = lengths
        findings += [f for f in (
            truncation,
            # A pair's empty answers are `empty_side`, which names the side.
            None if fmt == "preference" else empty_outputs(name, examples),
            duplicates(name, examples),
            near_duplicate_rows(name, examples, instruction, thresholds.near_duplicate_threshold),
            conflicting_labels(name, examples, fmt),
            # Imbalance matters where the model learns; held-out splits just measure what they hold.
            None if name in HELD_OUT else label_imbalance(name, examples, labels, thresholds.imbalance_ratio),
            copied_inputs(name, examples, fmt),
            length_outliers(name, examples, lengths, thresholds.length_outlier_factor),
            non_printable(name, examples),
            tool_call_problems(name, examples),
        ) if f]
        if fmt == "preference":
            findings += pair_findings(name, examples, settings.tokenizer, settings.max_length, settings.loss_on,
                                      settings.gold)
    if named.get("train"):
        for name in HELD_OUT:
            if named.get(name):
                leaked = leakage(named["train"], name, named[name], fmt, instruction,
                                 thresholds.near_duplicate_threshold)
                findings += [leaked] if leaked else []
    _add_histograms(summaries, lengths_by_split)
    sample = None
    first = next(((name, examples[0]) for name, examples in named.items() if examples), None)
    if first is not None:
        sample, template_finding = template_sample(first[1], first[0], settings.tokenizer, settings.loss_on)
        findings += [template_finding] if template_finding else []
    return DataReport(fmt, labels, settings.max_length, settings.loss_on, summaries, findings,
                      **_unreadable_listing(unreadable, thresholds.max_errors), sample=sample)


def _unreadable_listing(unreadable: RowErrors | None, max_errors: int) -> dict:
    """`DataReport`'s ``unreadable`` (in file order, up to ``max_errors``) and ``unreadable_count``."""
    errors = sorted(unreadable.errors, key=lambda e: (e.file, e.line or 0)) if unreadable else []
    return {"unreadable": [str(error) for error in errors[:max_errors]], "unreadable_count": len(errors)}


def _summarize(name: str, examples: list[Example], file: str | None, labels: list[str] | None,
               settings: CheckSettings) -> tuple[SplitSummary, list[int], Finding | None]:
    tokenizer, max_length, loss_on = settings.tokenizer, settings.max_length, settings.loss_on
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
    truncation = None
    if stats.truncated_rows:
        truncation = finding(
            "truncated", name,
            f"{count_of(stats.truncated_rows, 'row')} longer than max_length {max_length}: "
            f"{stats.supervised_tokens_lost} supervised tokens cut"
            + (f" ({count_of(stats.rows_without_supervision, 'row')} left with none)"
               if stats.rows_without_supervision else "")
            + "; raise data.max_length or shorten these rows",
            [(examples[i].location, f"{tokenized[i].supervised_lost} supervised tokens lost")
             if tokenized[i].supervised_lost else (examples[i].location, "") for i in truncated],
        )
    return summary, lengths, truncation


def _add_histograms(summaries: list[SplitSummary], lengths_by_split: dict[str, list[int]]) -> None:
    """Shared bin edges over every split, so the run report can draw the splits on one axis."""
    everything = [length for lengths in lengths_by_split.values() for length in lengths]
    if not everything:
        return
    low, high = min(everything), max(everything) + 1
    edges = np.linspace(low, high, min(HISTOGRAM_BINS, high - low) + 1)
    for summary in summaries:
        lengths = lengths_by_split[summary.name]
        if lengths:
            counts, _ = np.histogram(lengths, bins=edges)
            summary.length_histogram = {"edges": [round(float(e), 2) for e in edges], "counts": counts.tolist()}


def _length_stats(lengths: list[int]) -> dict[str, float] | None:
    if not lengths:
        return None
    values = np.asarray(lengths, dtype=float)
    return {
        "min": int(values.min()), "mean": round(float(values.mean()), 1), "median": float(np.median(values)),
        "p95": round(float(np.percentile(values, 95)), 1), "max": int(values.max()),
    }


def _render_sample(sample: dict) -> list[str]:
    text = sample["text"].rstrip("\n")
    if len(text) > SAMPLE_CHARS:
        text = text[:SAMPLE_CHARS] + f"... ({len(sample['text']) - SAMPLE_CHARS} more characters)"
    return [
        f"Sample ({sample['split']}, {sample['location']}): {sample['supervised_tokens']} of {sample['total_tokens']} "
        f"tokens supervised, marked [[...]]; template round trip: {sample['round_trip']}",
        *(f"    {line}".rstrip() for line in text.split("\n")),
    ]


def _format_tokens(tokens: dict[str, float] | None) -> str:
    if tokens is None:
        return "-"
    return " / ".join(f"{tokens[key]:g}" for key in ("min", "mean", "median", "p95", "max"))


def run_check(target: str, overrides: list[str], as_json: bool) -> tuple[str, int]:
    """`tunesmith data check TARGET`: ``(output text, exit code)`` with `DataReport.exit_code` (2 unreadable
    rows, 1 findings, 0 clean).

    ``TARGET`` is a run config (`.yaml`/`.yml`: its splits are checked) or one data file (checked as it is,
    read with the default config plus ``overrides``). Either way unreadable rows are listed and skipped; input
    that cannot be used at all raises its `TunesmithError` (the CLI exits 2); when that is because no row is
    usable, the error's ``report`` lists every bad row. Rows are read before the model is loaded, so a file that
    cannot be used is reported at once.
    """
    unreadable = RowErrors()
    is_config = Path(target).suffix.lower() in CONFIG_SUFFIXES
    config = (load_config(target, overrides) if is_config
              else validate_config(apply_overrides({"data": {"path": target}}, overrides)))
    try:
        if is_config:
            splits = load_splits(config.data, on_error=unreadable)
            report = check_data(splits, _settings(config, splits.format), unreadable)
        else:
            checked = read_file_as_split(target, config.data, unreadable)
            report = check_examples(checked, _settings(config, checked.format), unreadable)
    except NoUsableRowsError as error:
        # The error names the first bad row; the report lists every one (FILE:LINE: problem) for the user to fix.
        listing = DataReport("none", None, config.data.max_length, config.data.loss_on, [], [],
                             **_unreadable_listing(unreadable, config.data.check.max_errors))
        error.report = json.dumps(listing.to_dict(), indent=2, ensure_ascii=False) if as_json else listing.render()
        raise
    text = json.dumps(report.to_dict(), indent=2, ensure_ascii=False) if as_json else report.render()
    return text, report.exit_code


def _settings(config: RunConfig, fmt: str) -> CheckSettings:
    """How a run's data is checked; pairs also against the gold test set of the run they continue from."""
    settings = CheckSettings.of(load_tokenizer(config.model), config.data)
    return replace(settings, gold=gold_test_of(config)) if fmt == "preference" else settings


@locked
def check_run_data(config: RunConfig, run: RunDir, inputs: RunInputs) -> dict:
    """The pipeline's data stage: check the run's splits (``inputs``), write ``data_summary.json`` and show the
    findings.

    With ``data.streaming`` only the held-out files are checked here; training counts the truncation of every
    streamed row (``train_summary.json``).
    """
    splits = inputs.splits
    # The task is known now (resolving it checks `evaluate.metrics` and the label set): baseline and validation
    # metric names that do not fit it fail before any model is loaded.
    task = inputs.task
    config.evaluate.baselines_for(task.name)
    config.train.check_val_metrics(task.name)
    report = check_data(splits, _settings(config, splits.format))
    summary = report.to_dict()
    write_json(run.data_summary, summary)
    sizes = ", ".join(f"{name} {len(getattr(splits, name))}" for name in SPLITS)
    log.info("data: %s format, %s rows", splits.format, sizes)
    if report.has_problems:
        # Printed as is: the report is a table, which a log handler would re-wrap.
        log.warning("data check found problems (details in %s):", run.data_summary)
        print(report.render(), file=sys.stderr)
    return summary
