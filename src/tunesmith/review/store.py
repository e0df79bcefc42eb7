"""The review database (``<run>/review/review.db``): the prompts, the models' answers, each reviewer's blind queue
and every judgment, in SQLite.

Why SQLite: a judgment is committed the moment it is made (WAL, ``synchronous=FULL``), so a server killed mid-review
loses nothing; several processes (the web UI, `tunesmith review judge`) write one database safely, one writer at a
time (``BEGIN IMMEDIATE`` makes each check-then-write a single step across processes); and the file is readable
with any SQLite tool.

Blindness lives here: a queue row stores which model is shown as A and which as B for that (item, reviewer), so
`QueueItem` (what a reviewer sees) carries only the two texts, and `Judgment` (for statistics and export) maps the
verdict back to the models.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from tunesmith.errors import RunError, TunesmithError
from tunesmith.review.names import NAME_HINT, reviewer_name_error

REVIEW_FOLDER = "review"
DATABASE = "review.db"
VERDICTS = ("a", "b", "tie", "both_bad")
"""A better, B better, tie, both bad: keys 1..4 in the UI, in this order."""
SCORE_RANGE = (1, 5)
ModelRole = Literal["tuned", "base", "run"]
"""The run's tuned model, its base model, or another run's model."""
ReviewerKind = Literal["human", "judge"]
"""A person, or a judge model (`tunesmith.review.judge`)."""
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE models (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
                     role TEXT NOT NULL CHECK (role IN ('tuned', 'base', 'run')), source TEXT);
CREATE TABLE prompts (id INTEGER PRIMARY KEY, location TEXT NOT NULL, system TEXT, prompt TEXT NOT NULL,
                      reference TEXT, label TEXT);
CREATE TABLE answers (prompt_id INTEGER NOT NULL REFERENCES prompts(id),
                      model_id INTEGER NOT NULL REFERENCES models(id), text TEXT NOT NULL,
                      PRIMARY KEY (prompt_id, model_id));
CREATE TABLE items (id INTEGER PRIMARY KEY, prompt_id INTEGER NOT NULL REFERENCES prompts(id),
                    first_model INTEGER NOT NULL REFERENCES models(id),
                    second_model INTEGER NOT NULL REFERENCES models(id));
CREATE TABLE reviewers (name TEXT PRIMARY KEY, kind TEXT NOT NULL CHECK (kind IN ('human', 'judge')));
CREATE TABLE queue (reviewer TEXT NOT NULL REFERENCES reviewers(name), position INTEGER NOT NULL,
                    item_id INTEGER NOT NULL REFERENCES items(id), model_a INTEGER NOT NULL REFERENCES models(id),
                    model_b INTEGER NOT NULL REFERENCES models(id),
                    PRIMARY KEY (reviewer, position), UNIQUE (reviewer, item_id));
CREATE TABLE judgments (seq INTEGER PRIMARY KEY AUTOINCREMENT, reviewer TEXT NOT NULL, item_id INTEGER NOT NULL,
                        verdict TEXT NOT NULL, comment TEXT NOT NULL, scores_a TEXT NOT NULL, scores_b TEXT NOT NULL,
                        judged_at TEXT NOT NULL, UNIQUE (reviewer, item_id),
                        FOREIGN KEY (reviewer, item_id) REFERENCES queue(reviewer, item_id));
"""


class ReviewError(TunesmithError):
    """A review request that cannot be done. ``status`` is the HTTP status the web UI answers with: 400 for a bad
    verdict or score (this class), 404 (`ReviewNotFound`), 409 (`ReviewConflict`)."""

    status = 400


class ReviewNotFound(ReviewError):
    """An unknown item or reviewer, or a run without a review."""

    status = 404


class ReviewConflict(ReviewError):
    """An item judged twice by one reviewer, or an undo with nothing to undo, or a review that exists already."""

    status = 409


@dataclass(frozen=True)
class QueueItem:
    """One item as a reviewer sees it: the two answers under their blind sides, no model names."""

    item_id: int
    position: int
    """1-based, in this reviewer's queue."""
    total: int
    prompt: str
    """The last user message: what the models were asked."""
    system: str | None
    answer_a: str
    answer_b: str
    reference: str | None
    """The gold answer (or label), only when the review was created with it visible."""


@dataclass(frozen=True)
class Judgment:
    """One stored judgment with the models un-blinded (for statistics and export)."""

    seq: int
    reviewer: str
    reviewer_kind: ReviewerKind
    item_id: int
    prompt_id: int
    location: str
    model_a: str
    model_b: str
    verdict: str
    comment: str
    scores_a: dict[str, int]
    scores_b: dict[str, int]
    judged_at: str

    @property
    def winner(self) -> str | None:
        """The model judged better; None for a tie or both bad."""
        return {"a": self.model_a, "b": self.model_b}.get(self.verdict)

    def scores_of(self, model: str) -> dict[str, int]:
        return self.scores_a if model == self.model_a else self.scores_b if model == self.model_b else {}


@dataclass(frozen=True)
class Item:
    """An item un-blinded: the prompt and the two compared models' answers (``first``/``second`` in creation
    order, not the sides any reviewer saw)."""

    item_id: int
    prompt_id: int
    location: str
    system: str | None
    prompt: str
    reference: str | None
    label: str | None
    first: str
    second: str
    answers: dict[str, str] = field(compare=False)


@dataclass(frozen=True)
class ReviewPrompt:
    """A test prompt of the review and each model's answer to it."""

    location: str
    system: str | None
    prompt: str
    reference: str | None
    label: str | None
    answers: dict[str, str]
    """Model name → its answer."""


@dataclass(frozen=True)
class ReviewPlan:
    """Everything `create_database` writes."""

    models: list[tuple[str, ModelRole, str | None]]
    """``(name, role, source)``, the tuned model first."""
    prompts: list[ReviewPrompt]
    items: list[tuple[int, str, str]]
    """``(index in prompts, first model, second model)``."""
    queues: dict[str, list[tuple[int, str, str]]]
    """Each reviewer's queue in order: ``(index in items, model shown as A, model shown as B)``."""
    rubric: list[str]
    show_reference: bool
    settings: dict = field(default_factory=dict)
    """What else the review was made with (seed, overlap, task), kept for the record (JSON values)."""


def database_path(run_root: str | Path) -> Path:
    return Path(run_root) / REVIEW_FOLDER / DATABASE


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def create_database(path: Path, plan: ReviewPlan) -> None:
    """Write a new review database at ``path`` (which must not exist) from ``plan``, in one transaction."""
    for reviewer in plan.queues:
        _check_name(reviewer, "human")
    connection = sqlite3.connect(path, isolation_level=None)
    try:
        connection.executescript(_SCHEMA)
        connection.execute("BEGIN")
        model_ids = {}
        for name, role, source in plan.models:
            model_ids[name] = connection.execute("INSERT INTO models (name, role, source) VALUES (?, ?, ?)",
                                                 (name, role, source)).lastrowid
        prompt_ids = []
        for prompt in plan.prompts:
            prompt_ids.append(connection.execute(
                "INSERT INTO prompts (location, system, prompt, reference, label) VALUES (?, ?, ?, ?, ?)",
                (prompt.location, prompt.system, prompt.prompt, prompt.reference, prompt.label),
            ).lastrowid)
            connection.executemany("INSERT INTO answers VALUES (?, ?, ?)", [
                (prompt_ids[-1], model_ids[name], text) for name, text in prompt.answers.items()])
        item_ids = [connection.execute("INSERT INTO items (prompt_id, first_model, second_model) VALUES (?, ?, ?)",
                                       (prompt_ids[index], model_ids[first], model_ids[second])).lastrowid
                    for index, first, second in plan.items]
        for reviewer, queue in plan.queues.items():
            connection.execute("INSERT INTO reviewers VALUES (?, 'human')", (reviewer,))
            connection.executemany("INSERT INTO queue VALUES (?, ?, ?, ?, ?)", [
                (reviewer, position, item_ids[index], model_ids[a], model_ids[b])
                for position, (index, a, b) in enumerate(queue, start=1)])
        meta = {"tuned": plan.models[0][0], "rubric": plan.rubric, "show_reference": plan.show_reference,
                "settings": plan.settings, "schema_version": SCHEMA_VERSION, "created_at": now()}
        connection.executemany("INSERT INTO meta VALUES (?, ?)",
                               [(key, json.dumps(value)) for key, value in meta.items()])
        connection.execute("COMMIT")
    finally:
        connection.close()


def _check_name(name: str, kind: ReviewerKind) -> None:
    if problem := reviewer_name_error(name, person=kind == "human"):
        raise ReviewError(problem, NAME_HINT)


class ReviewStore:
    """A run's review database, safe to call from several threads (one connection behind a lock) and from several
    processes (SQLite's locking). Use as a context manager, or call `close`."""

    def __init__(self, path: Path):
        self.path = path
        # check_same_thread=False: the web UI calls from its worker threads; `_lock` serializes them.
        self._connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        self._lock = threading.RLock()
        try:
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA synchronous=FULL")  # durable at commit, also across a power cut
            self._connection.execute("PRAGMA foreign_keys=ON")
            meta = {key: json.loads(value) for key, value in self._rows("SELECT key, value FROM meta")}
        except BaseException:
            self._connection.close()
            raise
        missing = {"tuned", "rubric", "show_reference", "settings", "created_at"} - set(meta)
        if missing:
            self._connection.close()
            raise ValueError(f"its meta table lacks {', '.join(sorted(missing))}")
        self.tuned: str = meta["tuned"]
        """The tuned model's name: the one the others are compared with."""
        self.rubric: list[str] = meta["rubric"]
        self.show_reference: bool = meta["show_reference"]
        self.settings: dict = meta["settings"]
        """What else the review was made with (seed, overlap, task)."""
        self.created_at: str = meta["created_at"]

    @classmethod
    def open(cls, run_root: str | Path) -> ReviewStore:
        """The review of the run at ``run_root``; `ReviewNotFound` when it has none."""
        path = database_path(run_root)
        if not path.is_file():
            raise ReviewNotFound(f"{run_root} has no review ({path} does not exist)",
                                 f"create one with `tunesmith review create {run_root}`")
        try:
            return cls(path)
        except (sqlite3.DatabaseError, ValueError) as error:
            raise RunError(f"{path} cannot be read as a review database ({error})",
                           "export what can be read with any SQLite tool, or create the review again") from None

    @staticmethod
    def exists(run_root: str | Path) -> bool:
        return database_path(run_root).is_file()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    # ---- reading ---------------------------------------------------------------------------------------------

    @property
    def reviewers(self) -> list[str]:
        """The human reviewers, in creation order (judge models are in `judges`)."""
        return [name for name, in self._rows("SELECT name FROM reviewers WHERE kind = 'human' ORDER BY rowid")]

    @property
    def judges(self) -> list[str]:
        return [name for name, in self._rows("SELECT name FROM reviewers WHERE kind = 'judge' ORDER BY rowid")]

    @property
    def models(self) -> dict[str, ModelRole]:
        """Model name → role (``tuned``, ``base`` or ``run``), in creation order (the tuned model first)."""
        return dict(self._rows("SELECT name, role FROM models ORDER BY id"))

    def next_item(self, reviewer: str) -> QueueItem | None:
        """The first item of ``reviewer``'s queue without their judgment; None when they are done."""
        self._require_reviewer(reviewer)
        row = self._rows("SELECT item_id FROM queue WHERE reviewer = ? AND item_id NOT IN "
                         "(SELECT item_id FROM judgments WHERE reviewer = ?) ORDER BY position LIMIT 1",
                         (reviewer, reviewer))
        return self.item(reviewer, row[0][0]) if row else None

    def item(self, reviewer: str, item_id: int) -> QueueItem:
        """Item ``item_id`` as ``reviewer`` sees it; `ReviewNotFound` when it is not in their queue."""
        self._require_reviewer(reviewer)
        rows = self._rows(
            "SELECT q.position, p.prompt, p.system, p.reference, a.text, b.text, "
            "(SELECT COUNT(*) FROM queue WHERE reviewer = q.reviewer) "
            "FROM queue q JOIN items i ON i.id = q.item_id JOIN prompts p ON p.id = i.prompt_id "
            "JOIN answers a ON a.prompt_id = p.id AND a.model_id = q.model_a "
            "JOIN answers b ON b.prompt_id = p.id AND b.model_id = q.model_b "
            "WHERE q.reviewer = ? AND q.item_id = ?", (reviewer, item_id))
        if not rows:
            raise ReviewNotFound(f"item {item_id} is not in {reviewer}'s queue")
        position, prompt, system, reference, answer_a, answer_b, total = rows[0]
        return QueueItem(item_id=item_id, position=position, total=total, prompt=prompt, system=system,
                         answer_a=answer_a, answer_b=answer_b,
                         reference=reference if self.show_reference else None)

    def progress(self, reviewer: str) -> tuple[int, int]:
        """``(judged, total)`` of ``reviewer``'s queue."""
        self._require_reviewer(reviewer)
        [(judged, total)] = self._rows(
            "SELECT (SELECT COUNT(*) FROM judgments WHERE reviewer = ?), "
            "(SELECT COUNT(*) FROM queue WHERE reviewer = ?)",
            (reviewer, reviewer))
        return judged, total

    def judgments(self) -> list[Judgment]:
        """Every judgment, un-blinded, in the order they were made."""
        rows = self._rows(
            "SELECT j.seq, j.reviewer, r.kind, j.item_id, i.prompt_id, p.location, ma.name, mb.name, j.verdict, "
            "j.comment, j.scores_a, j.scores_b, j.judged_at FROM judgments j "
            "JOIN reviewers r ON r.name = j.reviewer "
            "JOIN queue q ON q.reviewer = j.reviewer AND q.item_id = j.item_id "
            "JOIN items i ON i.id = j.item_id JOIN prompts p ON p.id = i.prompt_id "
            "JOIN models ma ON ma.id = q.model_a JOIN models mb ON mb.id = q.model_b ORDER BY j.seq")
        return [Judgment(*row[:10], scores_a=json.loads(row[10]), scores_b=json.loads(row[11]), judged_at=row[12])
                for row in rows]

    def items(self) -> list[Item]:
        """Every item un-blinded, in creation order."""
        answers: dict[int, dict[str, str]] = {}
        for prompt_id, name, text in self._rows(
                "SELECT a.prompt_id, m.name, a.text FROM answers a JOIN models m ON m.id = a.model_id"):
            answers.setdefault(prompt_id, {})[name] = text
        rows = self._rows(
            "SELECT i.id, p.id, p.location, p.system, p.prompt, p.reference, p.label, f.name, s.name FROM items i "
            "JOIN prompts p ON p.id = i.prompt_id JOIN models f ON f.id = i.first_model "
            "JOIN models s ON s.id = i.second_model ORDER BY i.id")
        return [Item(*row, answers={name: answers[row[1]][name] for name in row[7:9]}) for row in rows]

    def queue(self, reviewer: str) -> list[tuple[int, str, str]]:
        """``reviewer``'s queue un-blinded: ``(item id, model shown as A, model shown as B)`` in queue order."""
        self._require_reviewer(reviewer)
        return [tuple(row) for row in self._rows(
            "SELECT q.item_id, ma.name, mb.name FROM queue q JOIN models ma ON ma.id = q.model_a "
            "JOIN models mb ON mb.id = q.model_b WHERE q.reviewer = ? ORDER BY q.position", (reviewer,))]

    # ---- writing ---------------------------------------------------------------------------------------------

    def judge(self, reviewer: str, item_id: int, verdict: str, comment: str = "",
              scores_a: dict[str, int] | None = None, scores_b: dict[str, int] | None = None) -> None:
        """Store ``reviewer``'s verdict on ``item_id`` (one of `VERDICTS`, for the sides they saw), committed
        before this returns. `ReviewConflict` when they judged it already (undo first to change it)."""
        if verdict not in VERDICTS:
            raise ReviewError(f"verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
        checked = [self._checked_scores(scores, side) for scores, side in ((scores_a, "A"), (scores_b, "B"))]
        with self._writing() as connection:
            self.item(reviewer, item_id)  # 404 for an unknown reviewer or an item outside their queue
            try:
                connection.execute(
                    "INSERT INTO judgments (reviewer, item_id, verdict, comment, scores_a, scores_b, judged_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (reviewer, item_id, verdict, comment or "", json.dumps(checked[0]), json.dumps(checked[1]), now()))
            except sqlite3.IntegrityError:
                raise ReviewConflict(f"{reviewer} has judged item {item_id} already",
                                     "undo the last judgment to change it") from None

    def undo(self, reviewer: str) -> int:
        """Remove ``reviewer``'s latest judgment; returns its item id (`ReviewConflict` when there is none)."""
        with self._writing() as connection:
            self._require_reviewer(reviewer)
            row = connection.execute("SELECT seq, item_id FROM judgments WHERE reviewer = ? ORDER BY seq DESC LIMIT 1",
                                     (reviewer,)).fetchone()
            if row is None:
                raise ReviewConflict(f"{reviewer} has no judgment to undo")
            connection.execute("DELETE FROM judgments WHERE seq = ?", (row[0],))
            return row[1]

    def add_reviewer(self, name: str, kind: ReviewerKind, queue: list[tuple[int, str, str]]) -> None:
        """Add a reviewer (a judge model, or a human added later) with ``queue``: ``(item id, model on side A,
        model on side B)`` in order. `ReviewConflict` when the name is taken."""
        _check_name(name, kind)
        with self._writing() as connection:
            if connection.execute("SELECT 1 FROM reviewers WHERE name = ?", (name,)).fetchone():
                raise ReviewConflict(f"reviewer {name!r} exists already in {self.path}")
            model_ids = dict(connection.execute("SELECT name, id FROM models"))
            connection.execute("INSERT INTO reviewers VALUES (?, ?)", (name, kind))
            connection.executemany("INSERT INTO queue VALUES (?, ?, ?, ?, ?)", [
                (name, position, item_id, model_ids[a], model_ids[b])
                for position, (item_id, a, b) in enumerate(queue, start=1)])

    # ---- internals -------------------------------------------------------------------------------------------

    def _rows(self, sql: str, parameters: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._connection.execute(sql, parameters).fetchall()

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, committed on success: ``BEGIN IMMEDIATE`` takes SQLite's write lock first, so a
        check inside it and the write after it see the same database in every process."""
        with self._lock:
            self._connection.execute("BEGIN IMMEDIATE")
            try:
                yield self._connection
            except BaseException:
                self._connection.execute("ROLLBACK")
                raise
            self._connection.execute("COMMIT")

    def _require_reviewer(self, reviewer: str) -> None:
        if not self._rows("SELECT 1 FROM reviewers WHERE name = ?", (reviewer,)):
            known = ", ".join(self.reviewers + self.judges) or "none"
            raise ReviewNotFound(f"unknown reviewer {reviewer!r} (reviewers: {known})")

    def _checked_scores(self, scores: dict | None, side: str) -> dict[str, int]:
        """Rubric scores as given, or a `ReviewError` naming the bad key or value."""
        low, high = SCORE_RANGE
        for key, value in (scores or {}).items():
            if key not in self.rubric:
                raise ReviewError(f"answer {side}: {key!r} is not in the rubric ({', '.join(self.rubric)})")
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ReviewError(f"answer {side}: {key} must be a whole number from {low} to {high}, got {value!r}")
        return dict(scores or {})
