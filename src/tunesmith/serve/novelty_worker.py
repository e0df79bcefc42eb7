"""Each request's novelty (`tunesmith.retrieval.novelty`), measured on a thread of its own.

Embedding is CPU work that must not run on the event loop (every client would wait) nor on the engine's thread
(every generation would wait). A route hands the input to `NoveltyWorker.score` when it starts the model call, so the
two run side by side, and `novelty_fields` collects the score for the request record once the answer is ready.
Inputs waiting together are embedded in one batch (a batch that fails is scored again one input at a time, so a
hostile input fails alone). A novelty failure never fails a request: the record says what
went wrong (``novelty_error``) instead of holding a score.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass

from tunesmith.retrieval.novelty import NoveltyIndex

MAX_NOVELTY_CHARS = 8192
"""Inputs are cut to this many characters before embedding: sentence embedders read a few hundred tokens (MiniLM
256) and drop the rest, so the cut changes no score, while a hostile megabyte of text costs no tokenizing time."""
NOVELTY_WAIT_S = 2.0
"""How long a finished answer's record waits for its novelty score; past it the record says so
(``novelty_error``) rather than hold the answer back."""


@dataclass
class _Job:
    index: NoveltyIndex
    text: str
    future: Future


class NoveltyWorker:
    """One thread that scores inputs against novelty indexes, in batches of what waits."""

    def __init__(self):
        self._waiting: queue.Queue[_Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="tunesmith-novelty", daemon=True)
        self._thread.start()

    def score(self, index: NoveltyIndex, text: str) -> Future:
        """A future of ``text``'s novelty against ``index`` (a float)."""
        job = _Job(index, text[:MAX_NOVELTY_CHARS], Future())
        self._waiting.put(job)
        return job.future

    def stop(self, timeout: float = 30.0) -> None:
        """Score what waits, then end the thread."""
        self._waiting.put(None)
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            jobs = [self._waiting.get()]
            while not self._waiting.empty():
                jobs.append(self._waiting.get_nowait())
            stopping = None in jobs
            groups: dict[int, list[_Job]] = {}
            for job in jobs:
                # A request that gave up waiting cancelled its future: nothing to score.
                if job is not None and job.future.set_running_or_notify_cancel():
                    groups.setdefault(id(job.index), []).append(job)
            for group in groups.values():
                self._score(group)
            if stopping:
                return

    def _score(self, group: list[_Job]) -> None:
        try:
            scores = group[0].index.scores([job.text for job in group])
        except Exception as error:  # noqa: BLE001 - handed to the waiting request, which records it
            if len(group) > 1:  # one input that breaks the embedder must not cost the others their scores
                for job in group:
                    self._score([job])
                return
            group[0].future.set_exception(error)
            return
        for job, score in zip(group, scores):
            job.future.set_result(score)


async def novelty_fields(pending: Future | None) -> dict:
    """The request record's novelty fields: ``{"novelty": score}``, ``{"novelty_error": why}``, or nothing when the
    request's novelty is not measured (``pending`` None)."""
    if pending is None:
        return {}
    try:
        score = await asyncio.wait_for(asyncio.wrap_future(pending), NOVELTY_WAIT_S)
    except asyncio.TimeoutError:
        return {"novelty_error": f"not scored within {NOVELTY_WAIT_S:g} s of the answer"}
    except Exception as error:  # noqa: BLE001 - a novelty failure never fails the request; the record keeps it
        return {"novelty_error": f"{type(error).__name__}: {error}"[:500]}
    return {"novelty": round(score, 6)}
