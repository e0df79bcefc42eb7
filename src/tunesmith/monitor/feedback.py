"""`tunesmith feedback export LOG_DIR OUT.jsonl`: turn what users said about served answers into training rows.

Feedback records are tied to request records by ``id`` (the latest feedback of a request wins). A request becomes
a row when its target is known:

- a ``correction`` (or, for classification and regression, a ``label``) is the target;
- an answer rated ``up`` is kept as it was (the predicted label, for classification);
- an answer rated ``down`` with nothing better is left out;
- with ``min_rating="none"`` an answer nobody rated is kept too (default ``"up"``: only explicit feedback).

Rows are written in the run's own format (``data_summary.json``'s, else the format its data reads as) with its
own column names (``data.columns`` mapped back), so the file reads with the run's config, alone or as one of
``data.sources`` beside the old data. A request the format cannot hold (a multi-turn conversation in a
single-turn format, a label outside the run's labels, a regression target that is not a number), one without
logged content, and a repeat of a row already written (same prompt and target) are skipped and counted by reason.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tunesmith.config import RunConfig
from tunesmith.config.vocabulary import LABELED_FORMATS
from tunesmith.data.fields import key_of
from tunesmith.data.splits import load_run_splits
from tunesmith.errors import ConfigError, RunError
from tunesmith.json_files import dumps, read_json, write_jsonl
from tunesmith.monitor.request_log import LOG_FILE, ROTATED, answered, log_files, read_records, served_run
from tunesmith.run_dir import RunDir

MIN_RATINGS = ("up", "none")
SINGLE_TURN_FORMATS = ("alpaca", "prompt_completion", *LABELED_FORMATS)
SHAREGPT_FROM = {"user": "human", "assistant": "gpt", "system": "system"}

UNRATED = "not rated (--min-rating none keeps unrated answers)"
RATED_DOWN = "rated down without a correction"
FAILED = "the request failed, and no correction gives its answer"
NO_CONTENT = "its content was not logged (--no-log-content)"
OTHER_TURNS = "turns other than system, user and assistant text, which the run's formats cannot hold"
MULTI_TURN = "a multi-turn conversation, which the run's single-turn format cannot hold"
UNKNOWN_LABEL = "a label that is not one of the run's labels"
NOT_A_NUMBER = "a regression target that is not a number"
DUPLICATE = "the same prompt and target as a row already written"
OTHER_MODEL = "answered by another served model"
NO_REQUEST = "feedback whose request is not in the log"


class Skipped(Exception):
    """A request that gives no row; the message is the reason it is counted under."""


@dataclass
class FeedbackExport:
    output_path: str
    run: str
    format: str
    written: int
    skipped: Counter = field(default_factory=Counter)

    @property
    def exit_code(self) -> int:
        """1 when no row qualified (nothing was written), else 0."""
        return 0 if self.written else 1

    def render(self) -> str:
        if self.written:
            lines = [f"wrote {self.written} rows ({self.format}, as run {self.run} reads them) to {self.output_path}"]
        else:
            lines = [f"no request qualifies as a {self.format} row: wrote nothing"]
        if self.skipped:
            lines.append(f"skipped {sum(self.skipped.values())}:")
            lines += [f"  {reason}: {count}" for reason, count in self.skipped.most_common()]
        return "\n".join(lines)


def export_feedback(log_dir: str | Path, output_path: str | Path, run: str | Path | None = None,
                    min_rating: str = "up", overwrite: bool = False) -> FeedbackExport:
    """Write the rows the log's feedback gives (see the module docstring) to ``output_path`` (JSON Lines, written
    whole or not at all; an existing file only with ``overwrite``). The run is ``run``, else the primary
    model's run in served.json."""
    if min_rating not in MIN_RATINGS:
        raise ConfigError("--min-rating", f"{min_rating!r} is not one of {', '.join(MIN_RATINGS)}")
    output_path = Path(output_path)
    _check_output(log_dir, output_path, overwrite)
    served = served_run(log_dir, run)
    if served.run is None:
        raise RunError(f"feedback export needs the run whose data format to write: {served.missing}")
    config = served.run.config()
    fmt, labels = run_format(served.run, config)
    log = read_records(log_dir)
    rows: dict[str, dict] = {}  # keyed on the row's JSON: a repeat is written once
    skipped: Counter = Counter()
    for request in log.requests:
        try:
            if served.model is not None and request.get("model") != served.model:
                raise Skipped(OTHER_MODEL)
            target = _target(request, log.feedback.get(request.get("id")), fmt, min_rating)
            row = _row(request, target, fmt, labels, config.data.columns)
            key = dumps(row)
            if key in rows:
                raise Skipped(DUPLICATE)
            rows[key] = row
        except Skipped as skip:
            skipped[str(skip)] += 1
    requested = {request.get("id") for request in log.requests}
    skipped[NO_REQUEST] += sum(request_id not in requested for request_id in log.feedback)
    if rows:
        write_jsonl(output_path, rows.values())
    return FeedbackExport(str(output_path), str(served.run.root), fmt, len(rows), +skipped)


def run_format(run: RunDir, config: RunConfig) -> tuple[str, list[str] | None]:
    """The run's row format and label set: as its data check recorded them (``data_summary.json``), else as its
    data reads now."""
    summary = read_json(run.data_summary)
    if summary is not None and summary.get("format"):
        fmt, labels = summary["format"], summary.get("labels")
    else:
        splits = load_run_splits(config.data)
        fmt, labels = splits.format, splits.labels
    if fmt not in ("messages", "sharegpt", *SINGLE_TURN_FORMATS):
        raise RunError(f"run {run.root} reads its data as {fmt!r}, which has no one format to write feedback in "
                       "(a prompt and its answer)", "feedback fits runs in the formats messages, sharegpt, "
                       f"{', '.join(SINGLE_TURN_FORMATS)}")
    return fmt, labels


def _check_output(log_dir: str | Path, output_path: Path, overwrite: bool) -> None:
    if not output_path.name.endswith(".jsonl"):
        raise ConfigError("OUT", f"{output_path}: feedback is written as JSON Lines", "name the file *.jsonl")
    log_files(log_dir)  # a missing log is named before anything else
    in_log = output_path.resolve().parent == Path(log_dir).resolve()
    if in_log and (output_path.name == LOG_FILE or ROTATED.fullmatch(output_path.name)):
        raise ConfigError("OUT", f"{output_path} is a file of the request log (or the name of one to come)",
                          "write somewhere else")
    if output_path.exists() and not overwrite:
        raise ConfigError("OUT", f"{output_path} already exists; feedback export does not replace a file unless "
                          "asked", "pass --overwrite to replace it, or name another file")
    if output_path.is_dir():
        raise ConfigError("OUT", f"{output_path} is a folder", "name a file to write")


def _target(request: dict, feedback: dict | None, fmt: str, min_rating: str) -> str | float:
    """What the row teaches: the correction, else the answer the user approved (or, with ``min_rating`` none,
    did not judge)."""
    feedback = feedback or {}
    better = feedback.get("label") if fmt in LABELED_FORMATS else None
    if better is None and feedback.get("correction"):
        better = feedback["correction"]
    if better is not None:
        return _number(better) if fmt == "regression" else better
    if feedback.get("rating") == "down":
        raise Skipped(RATED_DOWN)
    if feedback.get("rating") != "up" and min_rating == "up":
        raise Skipped(UNRATED)
    if not answered(request):
        raise Skipped(FAILED)
    if fmt == "classification" and request.get("label") is not None:
        return request["label"]
    if not isinstance(request.get("answer"), str):
        raise Skipped(NO_CONTENT)
    return _number(request["answer"]) if fmt == "regression" else request["answer"]


def _number(value) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Skipped(NOT_A_NUMBER) from None
    if not math.isfinite(number):
        raise Skipped(NOT_A_NUMBER)
    return number


def _conversation(request: dict) -> list[dict]:
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


def _row(request: dict, target: str | float, fmt: str, labels: list[str] | None, columns: dict[str, str]) -> dict:
    """One row of ``fmt`` in the run's column names."""
    turns = _conversation(request)
    if fmt in ("messages", "sharegpt"):
        conversation = [*turns, {"role": "assistant", "content": str(target)}]
        if fmt == "messages":
            return {key_of("messages", columns): conversation}
        return {key_of("conversations", columns): [{"from": SHAREGPT_FROM.get(t["role"], t["role"]),
                                                    "value": t["content"]} for t in conversation]}
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
        fields = {"text": prompt, "target": target}
    elif fmt == "alpaca":
        fields = {"instruction": prompt, "output": target}
    else:
        fields = {"prompt": prompt, "completion": target}
    if system:
        fields["system"] = system[0]
    return {key_of(name, columns): value for name, value in fields.items()}
