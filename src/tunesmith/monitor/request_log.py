"""The request log of `tunesmith serve`: one JSON line per answered request, per shadow answer and per feedback,
appended to ``requests.jsonl`` in the log folder (the run folder's ``serve_logs/``, or ``--log-dir``), and read
back by `tunesmith monitor` and `tunesmith feedback export`.

Records (every one has ``kind``, ``id`` and ``time``, an ISO 8601 UTC timestamp):

- ``request``: ``model`` (the served name; None for a refused request), ``run`` (the run folder that answered;
  None for the base, a plain model folder and a refused request; absent in logs written before runs were named),
  ``route`` (``/v1/chat/completions``,
  ``/v1/completions``, ``/v1/classify``; a refused request's path), ``status`` (HTTP status), ``latency_s``,
  ``ttft_s`` (time to the first token; None for classification and failed requests), ``prompt_tokens`` (the
  templated prompt, system prompt included), ``completion_tokens``, ``finish_reason``; with content logging on,
  ``messages`` (the conversation the client sent, before the run's system prompt is added) and ``answer``; a
  classification adds ``text``, ``label`` and ``probability`` (the predicted label's, calibrated). An answer adds
  ``confidence`` (a label's calibrated probability, or a generation's sequence confidence, exp(mean token
  log-probability)), ``confidence_kind`` (``label_probability`` or ``sequence``), ``low_confidence`` (only when
  ``serve.min_confidence`` is set) and, for label probabilities, ``calibrated`` (whether a temperature was
  applied); ``novelty`` (the input's novelty; absent when not measured) or ``novelty_error`` (why scoring failed).
  A failed or refused request (a bad request, a 401 of the key check, a foreign Host) adds ``error``; no record
  holds key material.
- ``shadow``: the shadow model's answer to request ``id`` (``model``, ``run``, ``latency_s``, ``answer`` or
  ``label`` and ``probability``, ``confidence``, ``confidence_kind``, ``low_confidence``), written when the shadow
  finishes, after the primary's record.
- ``reload``: the server swapped what it serves (`tunesmith.serve.state.ServerState.reload`): ``trigger``
  (``watch``, ``admin``), ``from`` and ``to`` (served name → run folder), ``status`` (200, or the failure's),
  ``seconds`` or ``error`` (the previous models stayed in service), ``run`` (the primary run answering after it).
- ``feedback``: a user's judgment of the answer to request ``id``, by ``model`` and ``run`` (what answered it):
  ``rating`` (``up``/``down``/None), ``correction`` (a better answer) and ``label`` (the right label, one of that
  model's labels), each optional.

Without content logging (``--no-log-content``) the fields that hold user or model text (`CONTENT_FIELDS`) are left
out of every record; the counts, timings and labels stay.

The log survives a crash of the server: every record is one ``write`` of a whole line followed by a flush, so a
killed process loses nothing it had answered (the kernel holds what was flushed), and a reader skips a cut-off
last line. Any other line that is not a record (not UTF-8, not JSON, or JSON of another shape: `record_problem`)
is skipped too, with one warning naming FILE:LINE, and counted (`LogRecords.skipped_lines`): a damaged or edited
line costs the monitor that line, not the report.

When ``requests.jsonl`` grows past ``max_bytes`` it is renamed ``requests-000001.jsonl`` (then ``-000002``, ...)
and a new one is started; readers take the numbered files in order, then the current one.
``served.json`` beside them says which runs were served under which names, those replaced by a reload included
(`write_manifest`); `served_run` finds the run a log is judged against (``--run``, else the primary model's), and
`read_records` sorts the records by kind for the monitor and the feedback export.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from tunesmith.atomic import write_failure
from tunesmith.errors import RunError
from tunesmith.json_files import dumps, read_json, write_json
from tunesmith.run_dir import RunDir

LOG_FILE = "requests.jsonl"
MANIFEST_FILE = "served.json"
ROTATED = re.compile(r"requests-(\d{6})\.jsonl")
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
ROTATION_RETRIES = 3
ANSWERING_ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/classify")
"""The routes whose requests a model answers (the others read or record: models, feedback, health)."""
CONTENT_FIELDS = ("messages", "answer", "text", "correction")
"""Fields with user or model text, left out under ``--no-log-content``."""
FIELD_TYPES: dict[str, type] = {
    **dict.fromkeys(("kind", "id", "time", "model", "run", "route", "answer", "text", "label", "error", "rating",
                     "correction"), str),
    "status": int, "messages": list,
}
"""The type of each field a reader keys on, compares or copies (None is allowed for each): a record with another
type there is skipped. Figures (latency, tokens, novelty, confidence) are not among them: one that is not a finite
number is left out of its figure alone (`tunesmith.monitor.checks.finite_number`), and the request still counts."""
MAX_SKIP_WARNINGS = 10
"""Skipped lines warned about one by one; past this, one more line says the rest are counted."""
log = logging.getLogger("tunesmith")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class RequestLog:
    """Appends records to ``folder/requests.jsonl`` from any thread; rotates by size."""

    def __init__(self, folder: str | Path, max_bytes: int = DEFAULT_MAX_BYTES, log_content: bool = True):
        """Open (or start) the log; a folder that cannot be written (a read-only disk, no permission, a full disk)
        is a `RunError` saying so."""
        self.folder = Path(folder)
        self.max_bytes = max_bytes
        self.log_content = log_content
        self._lock = threading.Lock()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.folder / LOG_FILE, "a", encoding="utf-8")
        except OSError as error:
            failure = write_failure(error, self.folder / LOG_FILE)
            if failure is None:
                raise
            raise failure from None

    def write(self, record: dict) -> None:
        """Append ``record`` (``time`` added when missing) as one flushed line."""
        record = {"time": utc_now(), **record}
        if not self.log_content:
            record = {key: value for key, value in record.items() if key not in CONTENT_FIELDS}
        line = dumps(record) + "\n"
        with self._lock:
            self._handle.write(line)
            self._handle.flush()
            if self._handle.tell() >= self.max_bytes:
                self._rotate()

    def close(self) -> None:
        with self._lock:
            if not self._handle.closed:
                self._handle.flush()
                os.fsync(self._handle.fileno())
                self._handle.close()

    def _rotate(self) -> None:
        os.fsync(self._handle.fileno())
        self._handle.close()
        numbers = [int(match.group(1)) for path in self.folder.iterdir() if (match := ROTATED.fullmatch(path.name))]
        os.replace(self.folder / LOG_FILE, self.folder / f"requests-{max(numbers, default=0) + 1:06d}.jsonl")
        self._handle = open(self.folder / LOG_FILE, "a", encoding="utf-8")


def log_files(folder: str | Path) -> list[Path]:
    """The log's files, oldest first: the rotated ones in order, then ``requests.jsonl``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise RunError(f"{folder} is not a folder", "give the log folder of `tunesmith serve` (a run's serve_logs/ "
                       "or its --log-dir)")
    current = folder / LOG_FILE
    for _ in range(ROTATION_RETRIES):
        rotated = sorted((path for path in folder.iterdir() if ROTATED.fullmatch(path.name)), key=lambda p: p.name)
        files = rotated + ([current] if current.is_file() else [])
        if files:
            return files
        # A server rotating its first file renames requests.jsonl, then opens a new one: a reader listing the
        # folder before the rename and looking for requests.jsonl after it finds nothing. Look again.
        time.sleep(0.05)
    raise RunError(f"{folder} holds no request log ({LOG_FILE})", "serve a model with `tunesmith serve` first")


@dataclass
class SkippedLines:
    """The lines of a log that are not records: each is warned about (the first `MAX_SKIP_WARNINGS`), all are
    counted."""

    count: int = 0

    def skip(self, where: str, why: str) -> None:
        self.count += 1
        if self.count <= MAX_SKIP_WARNINGS:
            log.warning("%s: skipped, not a log record: %s", where, why)
        elif self.count == MAX_SKIP_WARNINGS + 1:
            log.warning("more lines are not log records; they are skipped and counted, not named")


def record_problem(value: object) -> str | None:
    """Why a parsed line is not a log record (a JSON object whose fields have the types `FIELD_TYPES` gives, a
    ``kind``, a ``time`` that reads as one, messages that are role and content); None for a record."""
    if not isinstance(value, dict):
        return f"a JSON {type(value).__name__}, not an object"
    for name, expected in FIELD_TYPES.items():
        field_value = value.get(name)
        if field_value is None:
            continue
        if isinstance(field_value, bool):  # an int to Python, never what a log field means
            return f"{name} is {field_value!r}, not a {_type_name(expected)}"
        if not isinstance(field_value, expected):
            return f"{name} is a {type(field_value).__name__}, not a {_type_name(expected)}"
    if not isinstance(value.get("kind"), str):
        return "it has no kind"
    if value.get("time") is not None:
        try:
            parse_time(value["time"])
        except ValueError:
            return f"time {value['time'][:40]!r} is not an ISO 8601 time"
    messages = value.get("messages") or []
    if not all(isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
               for m in messages):
        return "messages are not each a role and a content string"
    return None


def _type_name(expected: type) -> str:
    return {str: "string", int: "whole number", list: "list"}[expected]


def read_log(folder: str | Path, skipped: SkippedLines | None = None) -> Iterator[dict]:
    """Every record of the log, oldest first. A line cut off by a crash (the last of a file, not valid JSON) is
    skipped; any other line that is not a record (`record_problem`, not UTF-8, not JSON) is skipped with a warning
    naming it and counted in ``skipped``. A file the server rotates while it is read is followed to its new
    name."""
    skipped = skipped if skipped is not None else SkippedLines()
    read: set[str] = set()
    pending = log_files(folder)
    while pending:
        path = pending.pop(0)
        try:
            lines = path.read_bytes().split(b"\n")
        except FileNotFoundError:  # requests.jsonl was renamed since the listing: list the folder again
            pending = [later for later in log_files(folder) if later.name not in read]
            continue
        read.add(path.name)
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line.decode("utf-8"))
            except UnicodeDecodeError as error:
                skipped.skip(f"{path}:{number}", f"byte {error.start + 1} is not UTF-8")
                continue
            except (json.JSONDecodeError, RecursionError) as error:
                if number >= len(lines) - 1 and isinstance(error, json.JSONDecodeError):
                    break  # the final line (a cut-off write has no newline after it)
                skipped.skip(f"{path}:{number}", "not valid JSON")
                continue
            problem = record_problem(value)
            if problem is not None:
                skipped.skip(f"{path}:{number}", problem)
                continue
            yield value


@dataclass
class LogRecords:
    """A log's records by kind. Shadows and feedback are keyed by request id; a later one replaces an earlier one
    (a user who changes their mind)."""

    requests: list[dict] = field(default_factory=list)
    shadows: dict[str, dict] = field(default_factory=dict)
    feedback: dict[str, dict] = field(default_factory=dict)
    feedback_records: int = 0
    skipped_lines: int = 0
    """Lines of the log that are not records (each warned about as it was read)."""


def read_records(folder: str | Path) -> LogRecords:
    """`read_log` sorted by kind."""
    split = LogRecords()
    skipped = SkippedLines()
    for record in read_log(folder, skipped):
        kind = record.get("kind")
        if kind == "request":
            split.requests.append(record)
        elif kind == "shadow":
            split.shadows[record.get("id")] = record
        elif kind == "feedback":
            split.feedback[record.get("id")] = record
            split.feedback_records += 1
    split.skipped_lines = skipped.count
    return split


def answered(record: dict) -> bool:
    """A request record the model answered (no HTTP error)."""
    return (record.get("status") or 0) < 400


def refusal(record: dict) -> str | None:
    """What a request record is when no model was asked: a request refused before reaching one (a 401, a bad
    body: ``model`` None), e.g. "a refused request (401 to /v1/classify)", or one to a route that asks for no
    answer (a feedback POST); None for a request to a model, answered or failed."""
    route = record.get("route")
    if route in ANSWERING_ROUTES and record.get("model") is not None:
        return None
    if not answered(record):
        return f"a refused request ({record.get('status')} to {route})"
    return f"a request that asks for no answer ({route})"


def write_manifest(folder: str | Path, served: dict) -> None:
    """``served.json``: what this server serves, ``{"models": {name: {"run": folder or None, "model": model folder,
    ...}}, "primary": name, "shadow": name or None}``; the monitor and the feedback export find runs through it."""
    write_json(Path(folder) / MANIFEST_FILE, served)


def read_manifest(folder: str | Path) -> dict | None:
    return read_json(Path(folder) / MANIFEST_FILE)


def parse_time(text: str) -> datetime:
    """A record's ``time`` as an aware datetime (a trailing ``Z``, which Python 3.10 does not read, is UTC)."""
    moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class ServedRun:
    """The run a log is judged against (`served_run`), and the name its model's requests carry in the log."""

    run: RunDir | None
    model: str | None
    """The served name of the run's model (``model`` of its request records) when served.json names the run;
    None takes every request of the log as the run's."""
    missing: str = ""
    """Why there is no run, when ``run`` is None."""


def served_run(folder: str | Path, run: str | Path | None = None) -> ServedRun:
    """``run`` (``--run``) when given, else the run of the primary model in ``served.json``. A ``run`` that is not
    a run folder is an error; a manifest that names no usable run gives a `ServedRun` without one, saying why."""
    manifest = read_manifest(folder) or {}
    models = manifest.get("models") or {}
    if run is not None:
        chosen = RunDir(run)
        chosen.config()  # an error naming the folder when it is not a run
        target = chosen.root.resolve()
        names = [name for name, entry in models.items()
                 if (entry or {}).get("run") and Path(entry["run"]).resolve() == target]
        return ServedRun(chosen, names[0] if names else None)
    if not manifest:
        return ServedRun(None, None, f"{Path(folder) / MANIFEST_FILE} is missing; pass --run RUN")
    primary = manifest.get("primary")
    folder_of_run = (models.get(primary) or {}).get("run")
    if not folder_of_run:
        return ServedRun(None, primary, f"{MANIFEST_FILE} names no run for the primary model {primary!r} (a model "
                         "folder was served); pass --run RUN")
    chosen = RunDir(folder_of_run)
    if not chosen.config_path.is_file():
        return ServedRun(None, primary, f"the run of the primary model {primary!r}, {folder_of_run}, is not a run "
                         "folder here; pass --run RUN")
    return ServedRun(chosen, primary)
