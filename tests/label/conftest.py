"""Helpers of the labeling tests: queues without a run or a model, run folders as serving leaves them (a config
and data, no weights), and request logs as the server writes them."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from tunesmith.config import save_config, validate_config
from tunesmith.label.store import LabelQueue, QueueMeta
from tunesmith.monitor.request_log import RequestLog, write_manifest
from tunesmith.run_dir import RunDir


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


@pytest.fixture()
def label_run(tmp_path, tiny_model_dir, spam_rows):
    """``label_run(name="spam-run", rows=None, data=None) -> RunDir``: a run folder as serving leaves it (a config and
    its data, no weights): 30 spam/ham classification rows unless ``rows`` are given."""

    def make(name: str = "spam-run", rows: list | None = None, data: dict | None = None) -> RunDir:
        root = tmp_path / name
        root.mkdir(parents=True, exist_ok=True)
        data_file = tmp_path / f"{name}-data.jsonl"
        data_file.write_text("".join(json.dumps(row) + "\n" for row in rows or spam_rows(30)), encoding="utf-8")
        run = RunDir(root)
        save_config(validate_config({"model": {"name": str(tiny_model_dir)},
                                     "data": {"path": str(data_file), **(data or {})}}), run.config_path)
        return run

    return make


@pytest.fixture()
def request_log(tmp_path):
    """``request_log(records, run=None, folder="logs") -> folder``: a request log as the server writes it; with
    ``run``, a served.json that serves it as ``tuned``."""

    def write(records: list[dict], run: RunDir | None = None, folder: str = "logs") -> Path:
        log = RequestLog(tmp_path / folder)
        for record in records:
            log.write(record)
        log.close()
        if run is not None:
            write_manifest(tmp_path / folder, {"models": {"tuned": {"run": str(run.root), "model": "merged"}},
                                               "primary": "tuned", "shadow": None})
        return tmp_path / folder

    return write


def classified(number: int, text: str, **fields) -> dict:
    """A `/v1/classify` request record of model ``tuned``."""
    return {"kind": "request", "id": f"req-{number}", "model": "tuned", "route": "/v1/classify", "status": 200,
            "latency_s": 0.1, "ttft_s": None, "prompt_tokens": 20, "completion_tokens": 0, "finish_reason": "stop",
            "text": text, "label": "ham", **fields}


def chatted(number: int, content: str, answer: str = "an answer", **fields) -> dict:
    """A `/v1/chat/completions` request record of model ``tuned``."""
    return {"kind": "request", "id": f"req-{number}", "model": "tuned", "route": "/v1/chat/completions",
            "status": 200, "latency_s": 0.1, "ttft_s": 0.01, "prompt_tokens": 20, "completion_tokens": 3,
            "finish_reason": "stop", "messages": [{"role": "user", "content": content}], "answer": answer, **fields}


@pytest.fixture(scope="session")
def records():
    """``records.classified(number, text, **fields)`` and ``records.chatted(number, content, answer, **fields)``:
    request records as the server writes them."""
    return SimpleNamespace(classified=classified, chatted=chatted)
