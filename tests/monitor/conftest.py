"""Run folders as the monitor and the feedback export see them (a config and data, no weights), and request logs as
the server writes them."""

from __future__ import annotations

import json
import random
import string
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tunesmith.config import save_config, validate_config
from tunesmith.data.splits import load_run_splits
from tunesmith.data.tokenize import prompt_token_ids
from tunesmith.monitor.request_log import RequestLog, write_manifest
from tunesmith.run_dir import RunDir

START = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)


def _run_folder(root: Path, model_dir: Path, rows: list, data: dict | None = None, monitor: dict | None = None,
                ) -> RunDir:
    """A run folder as serving sees it: its config (data in ``data.jsonl`` beside it, split by fractions) and
    no weights (the monitor and the feedback export read the config and the data, never the model)."""
    root.mkdir(parents=True, exist_ok=True)
    data_file = root.parent / f"{root.name}-data.jsonl"
    data_file.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    run = RunDir(root)
    config = validate_config({"model": {"name": str(model_dir)}, "data": {"path": str(data_file), **(data or {})},
                              "monitor": monitor or {}})
    save_config(config, run.config_path)
    return run


@pytest.fixture()
def run_folder(tmp_path, tiny_model_dir):
    """``run_folder(name, rows, data=None, monitor=None) -> RunDir``: a run folder under tmp_path whose data is
    ``rows`` (``data`` and ``monitor`` are extra config settings)."""
    return lambda name, rows, data=None, monitor=None: _run_folder(tmp_path / name, tiny_model_dir, rows, data,
                                                                   monitor)


def _request(number: int, **fields) -> dict:
    """A request record of the log's schema, answered at ``START + number`` seconds: a chat completion unless
    ``fields`` say otherwise (a ``text`` makes it a classification)."""
    classify = "text" in fields
    record = {
        "kind": "request", "id": f"req-{number}", "time": (START + timedelta(seconds=number)).isoformat(),
        "model": "tuned", "route": "/v1/classify" if classify else "/v1/chat/completions", "status": 200,
        "latency_s": 0.1, "ttft_s": None if classify else 0.02, "prompt_tokens": 20, "completion_tokens": 1,
        "finish_reason": "stop",
    }
    return {**record, **fields}


@pytest.fixture(scope="session")
def request_record():
    """``request_record(number, **fields) -> dict``: a request record (see `_request`)."""
    return _request


def _write_log(folder: Path, records: list[dict], manifest: dict | None = None, **options) -> Path:
    log = RequestLog(folder, **options)
    for record in records:
        log.write(record)
    log.close()
    if manifest is not None:
        write_manifest(folder, manifest)
    return folder


@pytest.fixture(scope="session")
def write_log():
    """``write_log(folder, records, manifest=None, **RequestLog options) -> folder``: a request log as the server
    writes it (and its served.json when ``manifest`` is given)."""
    return _write_log


@pytest.fixture()
def spam_run(run_folder, spam_rows):
    """A classification run of 60 `spam_rows` (48 of them training rows)."""
    return run_folder("spam-run", spam_rows(60))


def _live_requests(tokenizer, run: RunDir, kind: str, count: int | None = None) -> list[dict]:
    rng = random.Random(0)
    records = []
    for number, example in enumerate(load_run_splits(run.config().data).train[:count]):
        tokens = len(prompt_token_ids(tokenizer, example.prompt_messages))
        text = example.messages[-2]["content"].split("\n\n", 1)[1]  # the row's text, after the instruction
        if kind == "shifted":
            text = " ".join("".join(rng.choices(string.ascii_lowercase, k=7)) for _ in range(12))
            records.append(_request(number, text=text, label="spam", probability=0.4, prompt_tokens=tokens + 100))
        else:
            records.append(_request(number, text=text, label=example.label, probability=0.95, prompt_tokens=tokens))
    return records


@pytest.fixture()
def live_requests(tiny_tokenizer):
    """``live_requests(run, kind, count=None) -> records``: classification requests for a run of `tiny_model_dir`,
    one per training row (the first ``count``). ``"familiar"``: the training rows themselves (their texts, labels
    and prompt lengths) predicted with confidence. ``"shifted"``: random texts 100 tokens longer, all predicted
    spam, with low confidence."""
    return lambda run, kind, count=None: _live_requests(tiny_tokenizer, run, kind, count)
