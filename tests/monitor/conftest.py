"""Run folders as the monitor and the feedback export see them (a config and data, no weights), request logs as
the server writes them, a synthetic run's reference and live traffic drawn like it (or shifted from it)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from tunesmith.config import save_config, validate_config
from tunesmith.monitor.request_log import RequestLog, write_manifest
from tunesmith.results.reference import Reference, write_reference
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


# ---- a run's reference and live traffic drawn like it ----------------------------------------------------------

LABELS = ["ham", "spam"]
HEALTHY_LABEL_SHARES = [0.87, 0.13]


def _draw(rng, count: int, shift: str | None = None) -> dict[str, list]:
    """``count`` held-out rows or requests of a synthetic classification run: novelty scores (continuous), prompt
    lengths (token counts, which repeat), predicted labels (13% spam) and confidence. ``shift`` moves one of them
    away from healthy traffic: ``novel`` inputs, ``long`` prompts, ``one_label`` (every answer spam), ``unsure``
    answers."""
    novelty = rng.beta(2, 5, count) * 0.8
    lengths = rng.poisson(30, count) + 10
    labels = rng.choice(LABELS, size=count, p=HEALTHY_LABEL_SHARES)
    confidence = 1 - rng.beta(1.2, 12, count)
    if shift == "novel":
        novelty = rng.uniform(0.6, 1.0, count)
    elif shift == "long":
        lengths = lengths + 40
    elif shift == "one_label":
        labels = ["spam"] * count
    elif shift == "unsure":
        confidence = rng.uniform(0.5, 0.7, count)
    return {"novelty": [float(v) for v in novelty], "prompt_tokens": [int(v) for v in lengths],
            "labels": [str(v) for v in labels], "confidence": [float(v) for v in confidence]}


def _reference(seed: int = 0, rows: int = 1000, **fields):
    drawn = _draw(np.random.default_rng(seed), rows)
    values = {"task": "classification", "sources": {"validation": rows // 5, "test": rows - rows // 5},
              "instruction": "Classify this message.\n\n", "prompt_tokens": drawn["prompt_tokens"],
              "novelty": drawn["novelty"], "embedder": "all-MiniLM-L6-v2", "training_inputs": 4000,
              "labels": LABELS, "predicted_labels": drawn["labels"], "confidence": drawn["confidence"],
              "confidence_kind": "label_probability", "temperature": 1.3, "created": "2026-11-29T00:00:00+00:00"}
    return Reference(**{**values, **fields})


@pytest.fixture(scope="session")
def make_reference():
    """``make_reference(seed=0, rows=1000, **fields) -> Reference``: a synthetic classification run's reference
    (`_draw`), ``fields`` replacing its own."""
    return _reference


def _stream(seed: int, count: int, shift: str | None = None, first: int = 0, **fields) -> list[dict]:
    drawn = _draw(np.random.default_rng(seed), count, shift)
    return [_request(first + n, text=f"message {first + n}", label=drawn["labels"][n],
                     probability=drawn["confidence"][n], confidence=drawn["confidence"][n],
                     novelty=drawn["novelty"][n], prompt_tokens=drawn["prompt_tokens"][n], **fields)
            for n in range(count)]


@pytest.fixture(scope="session")
def live_stream():
    """``live_stream(seed, count, shift=None, first=0, **fields) -> records``: classification request records
    (one a second from ``START + first``) drawn as `make_reference`'s rows are, or shifted (see `_draw`)."""
    return _stream


@pytest.fixture()
def spam_run(run_folder, spam_rows, make_reference):
    """A classification run of 60 `spam_rows` with a synthetic reference (`make_reference`)."""
    run = run_folder("spam-run", spam_rows(60))
    write_reference(run.reference, make_reference())
    return run
