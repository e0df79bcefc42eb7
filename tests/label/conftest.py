"""Helpers of the labeling tests: a queue's meta and items without a run or a model."""

from __future__ import annotations

import pytest

from tunesmith.label.store import LabelQueue, QueueMeta


@pytest.fixture()
def queue_meta():
    """``queue_meta(task="classification", labels=("ham", "spam"))``: a `QueueMeta` for a made-up run."""

    def make(task: str = "classification", labels=("ham", "spam"), fmt: str | None = None, run: str = "run",
             teacher_model: str | None = None) -> QueueMeta:
        return QueueMeta(run=run, log_dir="logs", task=task, labels=list(labels) if labels else None,
                         format=fmt or ("classification" if task == "classification" else "prompt_completion"),
                         strategy="uncertainty", budget=10, created="2025-01-01T00:00:00+00:00",
                         teacher_model=teacher_model)

    return make


@pytest.fixture()
def make_queue(tmp_path, queue_meta):
    """``make_queue(n, task=..., labels=..., teacher=[...])``: a queue of ``n`` items at tmp_path/queue.db."""

    def make(n: int = 3, task: str = "classification", labels=("ham", "spam"), teacher=None, path=None,
             run: str = "run", fmt: str | None = None) -> LabelQueue:
        items = [{"request_id": f"r{i}", "input": f"message number {i}", "reason": "least confident",
                  "prediction": "ham", "confidence": 0.5 + i / 100,
                  "teacher_suggestion": teacher[i] if teacher else None} for i in range(n)]
        return LabelQueue.create(path or tmp_path / "queue.db",
                                 queue_meta(task, labels, fmt=fmt, run=run,
                                            teacher_model="teacher" if teacher else None), items)

    return make
