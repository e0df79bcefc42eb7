"""Training rows from served requests, in a run's own format under tunesmith's own column names: the one writer of
`tunesmith feedback export` (`tunesmith.monitor.feedback`) and `tunesmith label export` (`tunesmith.label.export`).

A request (its ``text``, or its ``messages``) and a target (the answer or label it should have had) become one row
of the run's format (``data_summary.json``'s, else the format its data reads as): ``{text, label}``, ``{text,
target}``, ``{messages}``, ``{conversations}``, ``{instruction, output}`` or ``{prompt, completion}``, plus a
``system`` field. Why tunesmith's names and not the run's ``data.columns``: the keys alone then say the format, so
the file is ordinary training data that `tunesmith data check FILE` and a config without a mapping read as it is
(a run's ``{label: label_text}`` written back would read as plain ``text`` rows). Beside old data read through a
mapping, the file is a ``data.sources`` entry whose own ``columns`` undo it (``{label: label}``). A request the format
cannot hold (a multi-turn conversation in a single-turn format, a label outside the run's labels, a regression
target that is not a number), one without logged content, and a repeat of a row already written (same prompt and
target) are skipped and counted by reason (`TrainingRows`).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.config import RunConfig
from tunesmith.config.vocabulary import LABELED_FORMATS
from tunesmith.data.splits import load_run_splits
from tunesmith.errors import ConfigError, RunError
from tunesmith.json_files import dumps, read_json, write_jsonl
from tunesmith.monitor.request_log import LOG_FILE, ROTATED, log_files
from tunesmith.run_dir import RunDir

SINGLE_TURN_FORMATS = ("alpaca", "prompt_completion", *LABELED_FORMATS)
SHAREGPT_FROM = {"user": "human", "assistant": "gpt", "system": "system"}

NO_CONTENT = "its content was not logged (--no-log-content)"
OTHER_TURNS = "turns other than system, user and assistant text, which the run's formats cannot hold"
MULTI_TURN = "a multi-turn conversation, which the run's single-turn format cannot hold"
UNKNOWN_LABEL = "a label that is not one of the run's labels"
NOT_A_NUMBER = "a regression target that is not a number"
DUPLICATE = "the same prompt and target as a row already written"


class Skipped(Exception):
    """A request that gives no row; the message is the reason it is counted under."""


@dataclass
class RowsWritten:
    """What an export wrote: ``written`` rows of ``format`` to ``output_path`` under the keys ``keys``, and what it
    skipped, by reason; ``run_columns`` is the run's ``data.columns``, which the rows do not use."""

    output_path: str
    run: str
    format: str
    written: int
    skipped: Counter = field(default_factory=Counter)
    keys: list[str] = field(default_factory=list)
    run_columns: dict[str, str] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """1 when no row qualified (nothing was written), else 0."""
        return 0 if self.written else 1

    def render(self, source: str = "request") -> str:
        """The counts as lines; ``source`` names what a row comes from ("request", "item")."""
        if self.written:
            lines = [f"wrote {self.written} rows ({self.format}: {', '.join(self.keys)}) to {self.output_path}"]
            if self.run_columns:
                mapping = ", ".join(f"{name}: {key}" for name, key in self.run_columns.items())
                undone = ", ".join(f"{name}: {name}" for name in self.run_columns)
                lines.append(f"the rows use tunesmith's own column names, not run {self.run}'s data.columns "
                             f"{{{mapping}}}: beside that data, give their data.sources entry columns: {{{undone}}}")
        else:
            lines = [f"no {source} qualifies as a {self.format} row: wrote nothing"]
        if self.skipped:
            lines.append(f"skipped {sum(self.skipped.values())}:")
            lines += [f"  {reason}: {count}" for reason, count in self.skipped.most_common()]
        return "\n".join(lines)


class TrainingRows:
    """The rows of one export, in the order added, each once; and what was skipped, by reason."""

    def __init__(self, run: RunDir, config: RunConfig):
        self.run = run
        self.format, self.labels = run_format(run, config)
        self.run_columns = config.data.columns
        self.skipped: Counter = Counter()
        self._rows: dict[str, dict] = {}  # keyed on the row's JSON: a repeat is written once

    def add(self, request: dict, target: str | float) -> None:
        """The row of ``request`` (a record's ``text`` and/or ``messages``) taught ``target``; a `Skipped` when the
        run's format cannot hold it or it repeats a row (the caller counts it with `skip`)."""
        row = training_row(request, target, self.format, self.labels)
        key = dumps(row)
        if key in self._rows:
            raise Skipped(DUPLICATE)
        self._rows[key] = row

    def skip(self, reason: str, count: int = 1) -> None:
        if count:
            self.skipped[reason] += count

    def write(self, output_path: Path) -> RowsWritten:
        """Write the rows to ``output_path`` (JSON Lines, whole or not at all); nothing when there is none."""
        if self._rows:
            write_jsonl(output_path, self._rows.values())
        keys = list(dict.fromkeys(key for row in self._rows.values() for key in row))
        return RowsWritten(str(output_path), str(self.run.root), self.format, len(self._rows), +self.skipped, keys,
                           dict(self.run_columns))


def run_format(run: RunDir, config: RunConfig) -> tuple[str, list[str] | None]:
    """The run's row format and label set: as its data check recorded them (``data_summary.json``), else as its
    data reads now."""
    summary = read_json(run.data_summary)
    if summary is not None and summary.get("format"):
        fmt, labels = summary["format"], summary.get("labels")
    else:
        splits = load_run_splits(config.data)
        fmt, labels = splits.format, splits.labels
    if fmt == "preference":
        raise RunError(f"run {run.root} reads preference pairs, which a prompt and one answer do not make",
                       "feedback export --pairs writes pairs")
    if fmt not in ("messages", "sharegpt", *SINGLE_TURN_FORMATS):
        raise RunError(f"run {run.root} reads its data as {fmt!r}, which has no one format to write training rows "
                       "in (a prompt and its answer)", "feedback and labels fit runs in the formats messages, "
                       f"sharegpt, {', '.join(SINGLE_TURN_FORMATS)}")
    return fmt, labels


def check_output(output_path: Path, overwrite: bool, command: str, log_dir: str | Path | None = None) -> None:
    """A one-line `ConfigError` (key ``OUT``) when ``output_path`` is not a ``*.jsonl`` file ``command`` may write:
    an existing file without ``overwrite``, a folder, or a file of the request log in ``log_dir``."""
    if not output_path.name.endswith(".jsonl"):
        raise ConfigError("OUT", f"{output_path}: training rows are written as JSON Lines", "name the file *.jsonl")
    if log_dir is not None:
        log_files(log_dir)  # a missing log is named before anything else
        in_log = output_path.resolve().parent == Path(log_dir).resolve()
        if in_log and (output_path.name == LOG_FILE or ROTATED.fullmatch(output_path.name)):
            raise ConfigError("OUT", f"{output_path} is a file of the request log (or the name of one to come)",
                              "write somewhere else")
    if output_path.exists() and not overwrite:
        raise ConfigError("OUT", f"{output_path} already exists; {command} does not replace a file unless asked",
                          "pass --overwrite to replace it, or name another file")
    if output_path.is_dir():
        raise ConfigError("OUT", f"{output_path} is a folder", "name a file to write")


def number(value) -> float:
    """``value`` as a finite float, else `Skipped` (`NOT_A_NUMBER`)."""
    try:
        parsed = float(value)
    except (TypeError, ValueError):
        raise Skipped(NOT_A_NUMBER) from None
    if not math.isfinite(parsed):
        raise Skipped(NOT_A_NUMBER)
    return parsed


def conversation(request: dict) -> list[dict]:
    """The client's conversation as ``{role, content}`` turns (a classification's text as one user turn)."""
    messages = request.get("messages")
    if isinstance(messages, list) and messages:
        turns = [{"role": m.get("role"), "content": m.get("content")} if isinstance(m, dict) else {}
                 for m in messages]
        if any(t.get("role") not in SHAREGPT_FROM or not isinstance(t.get("content"), str) for t in turns):
            raise Skipped(OTHER_TURNS)  # tool calls, content parts (images): no row format reads them
        return turns
    if isinstance(request.get("text"), str):
        return [{"role": "user", "content": request["text"]}]
    raise Skipped(NO_CONTENT)


def training_row(request: dict, target: str | float, fmt: str, labels: list[str] | None) -> dict:
    """One row of ``fmt`` under tunesmith's own column names (those `tunesmith.data.fields.detect_format` reads the
    format from) teaching ``target`` for ``request``; `Skipped` when ``fmt`` cannot hold it."""
    turns = conversation(request)
    if fmt in ("messages", "sharegpt"):
        whole = [*turns, {"role": "assistant", "content": str(target)}]
        if fmt == "messages":
            return {"messages": whole}
        return {"conversations": [{"from": SHAREGPT_FROM.get(t["role"], t["role"]), "value": t["content"]}
                                  for t in whole]}
    system = [t["content"] for t in turns if t["role"] == "system"]
    rest = [t for t in turns if t["role"] != "system"]
    if len(rest) != 1 or rest[0]["role"] != "user" or len(system) > 1:
        raise Skipped(MULTI_TURN)
    prompt = request["text"] if isinstance(request.get("text"), str) else rest[0]["content"]
    if fmt == "classification":
        if labels is not None and target not in labels:
            raise Skipped(UNKNOWN_LABEL)
        fields = {"text": prompt, "label": target}
    elif fmt == "regression":
        fields = {"text": prompt, "target": number(target)}
    elif fmt == "alpaca":
        fields = {"instruction": prompt, "output": target}
    else:
        fields = {"prompt": prompt, "completion": target}
    if system:
        fields["system"] = system[0]
    return fields
