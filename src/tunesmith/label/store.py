"""The labeling queue (``<run>/labeling/queue.db`` by default): the requests picked for labeling, a teacher's
suggestion for each, and every annotator's label or skip, in SQLite.

Why SQLite, as the review database (`tunesmith.review.store`): an annotation is committed the moment it is made (WAL,
``synchronous=FULL``), so a server killed mid-labeling loses nothing; several processes and threads write one queue
safely (``BEGIN IMMEDIATE`` makes each check-then-write one step across processes); the file reads with any SQLite
tool. Each thread gets its own connection (SQLite connections are not shared across threads here).

Every annotator works through the same items in queue order (`LabelQueue.next_item`); an annotator labels or skips
an item once (`LabelConflict` on a second time; `LabelQueue.undo` takes back their latest).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from tunesmith.errors import TunesmithError
from tunesmith.text import is_unicode

QUEUE_FOLDER = "labeling"
QUEUE_FILE = "queue.db"
SCHEMA_VERSION = 1
MAX_ANNOTATOR_LENGTH = 64

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (id INTEGER PRIMARY KEY, position INTEGER NOT NULL UNIQUE, request_id TEXT NOT NULL,
                    input TEXT NOT NULL, messages TEXT, prediction TEXT, confidence REAL, novelty REAL,
                    reason TEXT NOT NULL, teacher_suggestion TEXT, teacher_error TEXT);
CREATE TABLE annotations (seq INTEGER PRIMARY KEY AUTOINCREMENT, item_id INTEGER NOT NULL REFERENCES items(id),
                          annotator TEXT NOT NULL, value TEXT, skipped INTEGER NOT NULL CHECK (skipped IN (0, 1)),
                          time TEXT NOT NULL, UNIQUE (item_id, annotator),
                          CHECK ((skipped = 1 AND value IS NULL) OR (skipped = 0 AND value IS NOT NULL)));
"""


class LabelError(TunesmithError):
    """A labeling request that cannot be done. ``status`` is the HTTP status a web page answers with: 400 for a bad
    value or annotator name (this class), 404 (`LabelNotFound`), 409 (`LabelConflict`)."""

    status = 400


class LabelNotFound(LabelError):
    """An unknown item, or a queue file that does not exist."""

    status = 404


class LabelConflict(LabelError):
    """An item annotated twice by one annotator, or a queue that exists already."""

    status = 409


@dataclass(frozen=True)
class QueueMeta:
    """What the queue was made from and how."""

    run: str
    """The run folder whose model answered the requests (its format and labels are the export's)."""
    log_dir: str
    """The request log the items came from."""
    task: str
    """``classification``, ``regression`` or ``generation``: what a value is (`LabelQueue.annotate`)."""
    labels: list[str] | None
    """The run's labels (classification), in order: keys 1..9 in the labeling page."""
    format: str
    """The run's row format, which `tunesmith label export` writes."""
    strategy: str
    """``uncertainty``, ``novelty`` or ``mixed``."""
    budget: int
    created: str
    teacher_model: str | None
    """The teacher's model name, when items carry a teacher's suggestion."""


@dataclass(frozen=True)
class Item:
    """One request to label."""

    id: int
    position: int
    """1-based, in queue order (the order every annotator gets them)."""
    request_id: str
    """The request's ``id`` in the log."""
    input: str
    """What the model was asked: a classification's text, else the last user message."""
    messages: list[dict] | None
    """The whole conversation the client sent, when it was one."""
    prediction: str | None
    """What the model answered (the label, for classification)."""
    confidence: float | None
    novelty: float | None
    reason: str
    """Why it was picked (e.g. "least confident: 0.51")."""
    teacher_suggestion: str | None
    teacher_error: str | None
    """Why the teacher gave no usable suggestion (its error, or the reply it gave that is not a label)."""


@dataclass(frozen=True)
class Annotation:
    """One annotator's label (``value``) or skip of an item."""

    seq: int
    item_id: int
    annotator: str
    value: str | None
    skipped: bool
    time: str


ITEM_FIELDS = ("request_id", "input", "messages", "prediction", "confidence", "novelty", "reason",
               "teacher_suggestion", "teacher_error")
"""The fields `LabelQueue.create` reads from each item (an `Item`, any object with them, or a mapping); ``id`` and
``position`` are given by the order."""


def queue_path(run_root: str | Path) -> Path:
    """The default queue of a run: ``<run>/labeling/queue.db``."""
    return Path(run_root) / QUEUE_FOLDER / QUEUE_FILE


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def check_annotator(name: object) -> str:
    """``name`` when it is a usable annotator name (non-empty, at most `MAX_ANNOTATOR_LENGTH` characters, printable,
    no surrounding spaces), else a `LabelError` saying what is wrong."""
    if not isinstance(name, str) or not name.strip():
        raise LabelError("an annotator needs a name", "give a short name, e.g. your initials")
    if len(name) > MAX_ANNOTATOR_LENGTH:
        raise LabelError(f"an annotator name has at most {MAX_ANNOTATOR_LENGTH} characters, got {len(name)}")
    if not name.isprintable() or name != name.strip():
        raise LabelError(f"annotator name {name!r} has control characters or surrounding spaces",
                         "use letters, digits and punctuation")
    return name


class LabelQueue:
    """A labeling queue, safe to use from several threads (one SQLite connection per thread) and processes."""

    def __init__(self, path: Path, meta: QueueMeta):
        self.path = path
        self.meta = meta
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()

    # ---- making and opening ----------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, meta: QueueMeta, items: Sequence[object], overwrite: bool = False) -> LabelQueue:
        """Write a new queue at ``path`` holding ``items`` in order, whole or not at all (built beside it, then
        renamed into place). An existing file is replaced only with ``overwrite`` (else `LabelConflict`)."""
        path = Path(path)
        if path.is_dir():
            raise LabelError(f"{path} is a folder", "name the queue file, e.g. queue.db")
        if path.exists() and not overwrite:
            raise LabelConflict(f"{path} exists already; a queue is not replaced unless asked",
                                "pass --overwrite to replace it and lose its annotations, or name another file")
        path.parent.mkdir(parents=True, exist_ok=True)
        staging = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        staging.unlink(missing_ok=True)
        try:
            with _disk_errors(path):
                _write_queue(staging, meta, items)
                # A stale -wal beside the old file would be replayed into the new one: remove it with the file.
                for suffix in ("-wal", "-shm"):
                    Path(f"{path}{suffix}").unlink(missing_ok=True)
                os.replace(staging, path)
        finally:
            staging.unlink(missing_ok=True)
        return cls.open(path)

    @classmethod
    def open(cls, path: str | Path) -> LabelQueue:
        """The queue at ``path``: `LabelNotFound` when there is no file, a `LabelError` naming the file when it is
        not a labeling queue."""
        path = Path(path)
        if not path.is_file():
            raise LabelNotFound(f"{path} does not exist",
                                "create a queue with `tunesmith label create LOG_DIR --run RUN`")
        queue = cls(path, _UNREAD)
        try:
            rows = queue._rows("SELECT key, value FROM meta")
            meta = {key: json.loads(value) for key, value in rows}
            if meta.get("schema_version") != SCHEMA_VERSION:
                raise ValueError(f"schema version {meta.get('schema_version')!r}, not {SCHEMA_VERSION}")
            queue.meta = QueueMeta(**{name: meta[name] for name in QueueMeta.__dataclass_fields__})
            queue._rows("SELECT COUNT(*) FROM items")
            queue._rows("SELECT COUNT(*) FROM annotations")
        except (sqlite3.DatabaseError, ValueError, KeyError, TypeError) as error:
            queue.close()
            raise LabelError(f"{path} is not a labeling queue ({error})",
                             "give a file made by `tunesmith label create`") from None
        return queue

    def __enter__(self) -> LabelQueue:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close every thread's connection."""
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    # ---- reading ---------------------------------------------------------------------------------------------

    def items(self) -> list[Item]:
        """Every item, in queue order."""
        return [_item(row) for row in self._rows(f"SELECT {_ITEM_COLUMNS} FROM items ORDER BY position")]

    def item(self, item_id: int) -> Item:
        """Item ``item_id``; `LabelNotFound` when the queue has none."""
        rows = self._rows(f"SELECT {_ITEM_COLUMNS} FROM items WHERE id = ?", (item_id,))
        if not rows:
            raise LabelNotFound(f"the queue has no item {item_id}")
        return _item(rows[0])

    def next_item(self, annotator: str) -> Item | None:
        """The first item (by position) ``annotator`` has neither labeled nor skipped; None when they are done."""
        check_annotator(annotator)
        rows = self._rows(f"SELECT {_ITEM_COLUMNS} FROM items WHERE id NOT IN "
                          "(SELECT item_id FROM annotations WHERE annotator = ?) ORDER BY position LIMIT 1",
                          (annotator,))
        return _item(rows[0]) if rows else None

    def annotations(self) -> list[Annotation]:
        """Every annotation, in the order they were made."""
        return [Annotation(seq, item_id, annotator, value, bool(skipped), time) for seq, item_id, annotator, value,
                skipped, time in self._rows("SELECT seq, item_id, annotator, value, skipped, time FROM annotations "
                                            "ORDER BY seq")]

    def annotators(self) -> list[str]:
        """Everyone who annotated, in the order of their first annotation."""
        return [name for name, in self._rows("SELECT annotator FROM annotations GROUP BY annotator ORDER BY MIN(seq)")]

    def progress(self, annotator: str) -> tuple[int, int]:
        """``(done, total)``: the items ``annotator`` labeled or skipped, and the queue's items."""
        check_annotator(annotator)
        [(done, total)] = self._rows("SELECT (SELECT COUNT(*) FROM annotations WHERE annotator = ?), "
                                     "(SELECT COUNT(*) FROM items)", (annotator,))
        return done, total

    # ---- writing ---------------------------------------------------------------------------------------------

    def annotate(self, item_id: int, annotator: str, value: str | None, skipped: bool = False) -> Annotation:
        """Store ``annotator``'s ``value`` for ``item_id`` (or their skip: ``skipped`` with no value), committed
        before this returns. The value is one of the labels for classification, a number for regression, a
        non-empty text for generation; `LabelConflict` when this annotator annotated the item already (undo
        first to change it)."""
        check_annotator(annotator)
        value = self.check_value(value, skipped)
        with self._writing() as connection:
            if connection.execute("SELECT 1 FROM items WHERE id = ?", (item_id,)).fetchone() is None:
                raise LabelNotFound(f"the queue has no item {item_id}")
            time = now()
            try:
                seq = connection.execute(
                    "INSERT INTO annotations (item_id, annotator, value, skipped, time) VALUES (?, ?, ?, ?, ?)",
                    (item_id, annotator, value, int(skipped), time)).lastrowid
            except sqlite3.IntegrityError:
                raise LabelConflict(f"{annotator} has annotated item {item_id} already",
                                    "undo the last annotation to change it") from None
        return Annotation(seq, item_id, annotator, value, skipped, time)

    def undo(self, annotator: str) -> Annotation | None:
        """Remove ``annotator``'s latest annotation and return it; None when they have none."""
        check_annotator(annotator)
        with self._writing() as connection:
            row = connection.execute("SELECT seq, item_id, annotator, value, skipped, time FROM annotations "
                                     "WHERE annotator = ? ORDER BY seq DESC LIMIT 1", (annotator,)).fetchone()
            if row is None:
                return None
            connection.execute("DELETE FROM annotations WHERE seq = ?", (row[0],))
        seq, item_id, name, value, skipped, time = row
        return Annotation(seq, item_id, name, value, bool(skipped), time)

    def check_value(self, value: object, skipped: bool = False) -> str | None:
        """``value`` as stored, or a `LabelError` saying why it is not a label of this queue."""
        if skipped:
            if value is not None:
                raise LabelError("a skip carries no value", "send the value without skipping, or skip without one")
            return None
        if not isinstance(value, str) or not value.strip():
            raise LabelError("an annotation needs a value (or a skip)",
                             "pick a label" if self.meta.task == "classification" else "write the answer")
        if not is_unicode(value):
            raise LabelError("the value is not valid Unicode text (it holds a lone surrogate)")
        if self.meta.task == "classification" and self.meta.labels is not None and value not in self.meta.labels:
            raise LabelError(f"{value!r} is not one of the run's labels ({', '.join(self.meta.labels)})")
        if self.meta.task == "regression":
            try:
                number = float(value)
            except ValueError:
                raise LabelError(f"{value!r} is not a number, which a regression run's label is") from None
            if not math.isfinite(number):
                raise LabelError(f"{value!r} is not a finite number")
        return value

    # ---- internals -------------------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            try:
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=FULL")  # durable at commit, also across a power cut
                connection.execute("PRAGMA foreign_keys=ON")
            except BaseException:
                connection.close()
                raise
            with self._connections_lock:
                self._connections.append(connection)
            self._local.connection = connection
        return connection

    def _rows(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        with _disk_errors(self.path):
            return self._connection().execute(sql, parameters).fetchall()

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed on success: ``BEGIN IMMEDIATE`` takes SQLite's write lock first, so a
        check inside it and the write after it see the same database in every process."""
        connection = self._connection()
        with _disk_errors(self.path):
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")


_UNREAD = QueueMeta(run="", log_dir="", task="", labels=None, format="", strategy="", budget=0, created="",
                    teacher_model=None)
_ITEM_COLUMNS = "id, position, " + ", ".join(ITEM_FIELDS)


def _item(row: tuple) -> Item:
    values = dict(zip(("id", "position", *ITEM_FIELDS), row))
    values["messages"] = json.loads(values["messages"]) if values["messages"] is not None else None
    return Item(**values)


def _field(item: object, name: str):
    if isinstance(item, Mapping):
        return item.get(name)
    return getattr(item, name, None)


def _write_queue(path: Path, meta: QueueMeta, items: Sequence[object]) -> None:
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executescript(_SCHEMA)
        connection.execute("BEGIN")
        connection.executemany("INSERT INTO meta VALUES (?, ?)", [
            (key, json.dumps(value)) for key, value in {**asdict(meta), "schema_version": SCHEMA_VERSION}.items()])
        for position, item in enumerate(items, start=1):
            values = {name: _field(item, name) for name in ITEM_FIELDS}
            if not isinstance(values["input"], str) or not values["request_id"] or not values["reason"]:
                raise ValueError(f"item {position} lacks its request_id, input or reason")
            values["request_id"] = str(values["request_id"])
            if values["messages"] is not None:
                values["messages"] = json.dumps(values["messages"], ensure_ascii=False)
            connection.execute(f"INSERT INTO items (id, position, {', '.join(ITEM_FIELDS)}) VALUES "
                               f"(?, ?, {', '.join('?' for _ in ITEM_FIELDS)})",
                               (position, position, *values.values()))
        connection.execute("COMMIT")
    finally:
        connection.close()


@contextmanager
def _disk_errors(path: Path) -> Iterator[None]:
    """A full disk or an unwritable folder as a one-line `LabelError` naming the queue (what is committed stays)."""
    try:
        yield
    except sqlite3.OperationalError as error:
        text = str(error)
        if "full" in text:
            raise LabelError(f"the disk is full: writing {path} failed; every annotation committed before is intact",
                             "free some space and try again") from None
        if "locked" in text:
            raise LabelError(f"{path} is busy: another process held its write lock too long ({text})",
                             "try again") from None
        if "readonly" in text or "unable to open" in text or "disk I/O" in text:
            raise LabelError(f"{path} cannot be written ({text})",
                             "check the folder is writable and has space") from None
        raise
    except OSError as error:
        raise LabelError(f"writing {path} failed: {error.strerror or error}", "check the folder is writable and has "
                         "space") from None
