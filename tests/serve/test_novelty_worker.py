"""Novelty per request: scored on the worker thread with a known embedder, written on the request record of
classify and chat requests; a run without novelty support is served and logged without it (and says why once); a
failing or slow scorer never fails a request and is recorded; hostile inputs are cut before embedding."""

from __future__ import annotations

import asyncio
import logging
import threading

import httpx
import pytest

from tunesmith.monitor.request_log import read_log
from tunesmith.retrieval.novelty import NoveltyIndex
from tunesmith.run_dir import RunDir
from tunesmith.serve import novelty_worker
from tunesmith.serve.novelty_worker import MAX_NOVELTY_CHARS, NoveltyWorker, novelty_fields
from tunesmith.serve.served import load_served

TRAINING = ["win a free prize now", "see you at lunch", "claim your cash reward today", "are we still meeting?"]


def requests_of(folder) -> dict[str, dict]:
    return {record["id"]: record for record in read_log(folder) if record["kind"] == "request"}


def test_each_request_has_its_inputs_novelty(start_server, spam_runs, write_reference, trigram_embedder, tmp_path,
                                             caplog):
    a, b = spam_runs  # a: a reference and a novelty index; b: none
    write_reference(a, TRAINING, labels=["ham", "spam"], temperature=1.5)
    caplog.set_level(logging.WARNING, logger="tunesmith")
    url, state = start_server(lambda: load_served([str(a), str(b)], embedder=trigram_embedder))
    index = NoveltyIndex.load(RunDir(a).novelty, trigram_embedder())
    texts = ["win a free prize now", "Une recette de tarte aux pommes, longue et française"]
    ids = [httpx.post(f"{url}/v1/classify", json={"model": a.name, "text": text}).json()["id"] for text in texts]
    chat = httpx.post(f"{url}/v1/chat/completions", json={"model": a.name, "max_tokens": 3, "messages": [
        {"role": "user", "content": "an earlier turn"}, {"role": "assistant", "content": "ok"},
        {"role": "user", "content": texts[1]}]}).json()["id"]
    plain = httpx.post(f"{url}/v1/classify", json={"model": b.name, "text": texts[1]}).json()["id"]
    records = requests_of(tmp_path / "logs")
    expected = index.scores(texts)
    assert [records[i]["novelty"] for i in ids] == pytest.approx(expected, abs=1e-5)
    assert expected[0] == pytest.approx(0.0, abs=1e-5) and expected[1] > 0.3  # the check has teeth
    assert records[chat]["novelty"] == pytest.approx(expected[1], abs=1e-5)  # the last user message
    assert "novelty" not in records[plain] and "novelty_error" not in records[plain]  # still logged, no score
    assert records[plain]["status"] == 200
    warnings = [r.getMessage() for r in caplog.records if b.name in r.getMessage()]
    assert len(warnings) == 1 and "reference.json" in warnings[0]


def test_a_missing_index_or_extra_is_one_warning_and_serving_goes_on(spam_runs, write_reference, trigram_embedder,
                                                                     caplog):
    from tunesmith.extras import MissingExtraError

    a, b = spam_runs
    write_reference(a, TRAINING, labels=["ham", "spam"])
    write_reference(b, TRAINING, labels=["ham", "spam"])
    RunDir(b).novelty.joinpath("index.faiss").unlink()

    def no_rag(name):
        raise MissingExtraError("novelty per request", ["rag"])

    caplog.set_level(logging.WARNING, logger="tunesmith")
    served = load_served([str(a), str(b)], embedder=trigram_embedder)
    assert served.models[a.name].novelty is not None and served.models[b.name].novelty is None
    served = load_served([str(a)], embedder=no_rag)
    assert served.models[a.name].novelty is None
    lines = [r.getMessage() for r in caplog.records if "served without novelty" in r.getMessage()]
    assert len(lines) == 2
    assert "holds no novelty index" in lines[0] and "pip install 'tunesmith[rag]'" in lines[1]


class _Index:
    """A stand-in for `NoveltyIndex` that fails on some inputs and can be held until released."""

    def __init__(self, fail_on: str = "\x00", gate: threading.Event | None = None):
        self.fail_on, self.gate, self.batches = fail_on, gate, []

    def scores(self, texts):
        if self.gate is not None:
            self.gate.wait(10)
        self.batches.append(list(texts))
        if any(self.fail_on in text for text in texts):
            raise ValueError("the embedder cannot read this")
        return [len(text) / 100_000 for text in texts]


def test_the_worker_cuts_hostile_inputs_and_a_bad_one_fails_alone():
    worker = NoveltyWorker()
    gate = threading.Event()
    index = _Index(gate=gate)
    try:
        futures = [worker.score(index, "x" * 1_000_000), worker.score(index, "bad\x00input"),
                   worker.score(index, "fine")]
        gate.set()
        assert futures[0].result(10) == MAX_NOVELTY_CHARS / 100_000
        with pytest.raises(ValueError):
            futures[1].result(10)
        assert futures[2].result(10) == 4 / 100_000
        assert max(len(text) for batch in index.batches for text in batch) == MAX_NOVELTY_CHARS
    finally:
        gate.set()
        worker.stop()


def test_a_slow_or_failed_score_is_recorded_not_raised(monkeypatch):
    monkeypatch.setattr(novelty_worker, "NOVELTY_WAIT_S", 0.05)
    worker = NoveltyWorker()
    gate = threading.Event()
    try:
        slow = worker.score(_Index(gate=gate), "text")
        assert asyncio.run(novelty_fields(slow)) == {"novelty_error": "not scored within 0.05 s of the answer"}
        gate.set()
        failed = asyncio.run(novelty_fields(worker.score(_Index(), "bad\x00")))
        assert failed == {"novelty_error": "ValueError: the embedder cannot read this"}
        assert asyncio.run(novelty_fields(None)) == {}
        assert asyncio.run(novelty_fields(worker.score(_Index(), "ok"))) == {"novelty": 2e-05}
    finally:
        gate.set()
        worker.stop()
