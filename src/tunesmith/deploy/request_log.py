"""The request log of `tunesmith serve`: one JSON line per answered request, per shadow answer and per feedback,
appended to ``requests.jsonl`` in the log folder (the run folder's ``serve_logs/``, or ``--log-dir``), and read
back by `tunesmith monitor` and `tunesmith feedback export`.

Records (every one has ``kind``, ``id`` and ``time``, an ISO 8601 UTC timestamp):

- ``request``: ``model`` (the served name), ``route`` (``/v1/chat/completions``, ``/v1/completions`` or
  ``/v1/classify``), ``status`` (HTTP status), ``latency_s``, ``ttft_s`` (time to the first token; None for
  classification and failed requests), ``prompt_tokens`` (the templated prompt, system prompt included),
  ``completion_tokens``, ``finish_reason``; with content logging on, ``messages`` (the conversation the client
  sent, before the run's system prompt is added) and ``answer``; a classification adds ``text``, ``label`` and
  ``probability`` (the predicted label's); a failed request adds ``error``.
- ``shadow``: the shadow model's answer to request ``id`` (``model``, ``latency_s``, ``answer`` or ``label`` and
  ``probability``), written when the shadow finishes, after the primary's record.
- ``feedback``: a user's judgment of the answer to request ``id``: ``rating`` (``up``/``down``/None),
  ``correction`` (a better answer) and ``label`` (the right label), each optional.

Without content logging (``--no-log-content``) the fields that hold user or model text (`CONTENT_FIELDS`) are left
out of every record; the counts, timings and labels stay.

The log survives a crash of the server: every record is one ``write`` of a whole line followed by a flush, so a
killed process loses nothing it had answered (the kernel holds what was flushed), and a reader skips a cut-off
last line. When ``requests.jsonl`` grows past ``max_bytes`` it is renamed ``requests-000001.jsonl`` (then
``-000002``, ...) and a new one is started; readers take the numbered files in order, then the current one.
``served.json`` beside them says which runs were served under which names (`write_manifest`).
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from tunesmith.errors import RunError
from tunesmith.json_files import dumps, read_json, write_json

LOG_FILE = "requests.jsonl"
MANIFEST_FILE = "served.json"
ROTATED = re.compile(r"requests-(\d{6})\.jsonl")
DEFAULT_MAX_BYTES = 64 * 1024 * 1024
CONTENT_FIELDS = ("messages", "answer", "text", "correction")
"""Fields with user or model text, left out under ``--no-log-content``."""


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class RequestLog:
    """Appends records to ``folder/requests.jsonl`` from any thread; rotates by size."""

    def __init__(self, folder: str | Path, max_bytes: int = DEFAULT_MAX_BYTES, log_content: bool = True):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.log_content = log_content
        self._lock = threading.Lock()
        self._handle = open(self.folder / LOG_FILE, "a", encoding="utf-8")

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
    rotated = sorted((path for path in folder.iterdir() if ROTATED.fullmatch(path.name)), key=lambda p: p.name)
    current = folder / LOG_FILE
    files = rotated + ([current] if current.is_file() else [])
    if not files:
        raise RunError(f"{folder} holds no request log ({LOG_FILE})", "serve a model with `tunesmith serve` first")
    return files


def read_log(folder: str | Path) -> Iterator[dict]:
    """Every record of the log, oldest first. A line cut off by a crash (the last of a file, not valid JSON) is
    skipped; a bad line anywhere else is an error naming it."""
    for path in log_files(folder):
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().split("\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                if number >= len(lines) - 1:  # the final line (a cut-off write has no newline after it)
                    break
                raise RunError(f"{path}:{number} is not a valid log record",
                               "the log was edited or damaged; move that file aside") from None


def write_manifest(folder: str | Path, served: dict) -> None:
    """``served.json``: what this server serves, ``{"models": {name: {"run": folder or None, "model": model folder,
    ...}}, "primary": name, "shadow": name or None}``; the monitor and the feedback export find runs through it."""
    write_json(Path(folder) / MANIFEST_FILE, served)


def read_manifest(folder: str | Path) -> dict | None:
    return read_json(Path(folder) / MANIFEST_FILE)
