"""examples/sms_loop/loop.py when a step goes wrong: a server that dies at start, a swap that never comes, labelled
rows that leak test rows, an answer the server refuses. Each stops the loop with a `LoopError` naming the step."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sms_loop"


@pytest.fixture()
def loop_module():
    sys.path.insert(0, str(EXAMPLE))
    spec = importlib.util.spec_from_file_location("sms_loop_loop", EXAMPLE / "loop.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.path.remove(str(EXAMPLE))


def stub_server(served: list[str]):
    """A stand-in for `tunesmith serve`: /v1/classify says spam for texts with "win", answered by ``served[0]``."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/ready")
    def ready():
        return {"status": "ready"}

    @app.get("/v1/models")
    def models():
        return {"data": [{"id": name} for name in served] + [{"id": "base"}]}

    @app.post("/v1/classify")
    def classify(body: dict):
        if not body["text"]:
            from fastapi.responses import JSONResponse
            return JSONResponse({"error": {"message": "text is empty"}}, status_code=400)
        return {"label": "spam" if "win" in body["text"] else "ham", "confidence": 0.9, "model": served[0]}

    return app


def test_replay_records_each_answer_with_the_run_that_gave_it(loop_module, serving, tmp_path):
    from tunesmith import distributed

    port = distributed.free_port()
    with serving(stub_server(["round-1"]), "/ready", port=port):
        loop = loop_module.Loop(tmp_path / "out", port)
        rows = [{"text": "win a prize", "label_text": "spam"}, {"text": "see you", "label_text": "spam"}]
        answers = loop.replay("slice", rows)
        assert [(a["label"], a["gold"], a["run"]) for a in answers] == [("spam", "spam", "round-1"),
                                                                         ("ham", "spam", "round-1")]
        written = [json.loads(line) for line in (tmp_path / "out" / "replays" / "slice.jsonl").read_text().splitlines()]
        assert written == answers
        assert loop.served_runs() == ["round-1", "base"]


def test_a_refused_request_stops_the_replay(loop_module, serving, tmp_path):
    from urllib.error import HTTPError

    from tunesmith import distributed

    port = distributed.free_port()
    with serving(stub_server(["round-1"]), "/ready", port=port):
        loop = loop_module.Loop(tmp_path / "out", port)
        with pytest.raises(HTTPError):
            loop.replay("slice", [{"text": "", "label_text": "ham"}])


def test_a_swap_that_never_comes_is_a_loop_error(loop_module, monkeypatch):
    monkeypatch.setattr(loop_module.time, "sleep", lambda seconds: None)
    with pytest.raises(loop_module.LoopError, match="waited 0 s for the server to swap"):
        loop_module.wait_until(lambda: False, 0, "the server to swap")


def test_a_server_that_exits_at_start_is_a_loop_error(loop_module, tmp_path, monkeypatch):
    loop = loop_module.Loop(tmp_path / "out", port=1)
    monkeypatch.setattr(loop_module, "TUNESMITH", [sys.executable, "-c", "import sys; sys.exit(3)"])
    with pytest.raises(loop_module.LoopError, match="the server exited 3"):
        loop.start_server()


def test_a_failing_command_names_itself_and_its_log(loop_module, tmp_path, monkeypatch):
    loop = loop_module.Loop(tmp_path / "out", port=1)
    monkeypatch.setattr(loop_module, "TUNESMITH", [sys.executable, "-c", "print('no such run'); raise SystemExit(2)"])
    with pytest.raises(loop_module.LoopError, match=r"`tunesmith promote x` exited 2 \(OUT/logs/promote.log"):
        loop.tunesmith("promote", "promote", "x")
    assert (tmp_path / "out" / "logs" / "promote.log").read_text() == "no such run\n"


def test_labelled_rows_that_repeat_a_test_row_are_found_as_leakage(loop_module, tmp_path, tiny_model_dir):
    import yaml

    test = [{"text": f"message number {n} about the weekend plans", "label_text": "ham"} for n in range(6)]
    train = [{"text": f"unrelated text {n} for training only here", "label_text": "spam"} for n in range(6)]
    for name, rows in (("test", test), ("train", train + test[:1]), ("validation", train[:2])):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = tmp_path / "round-2.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"name": str(tiny_model_dir)},
        "data": {"train": str(tmp_path / "train.jsonl"), "validation": str(tmp_path / "validation.jsonl"),
                 "test": str(tmp_path / "test.jsonl"), "format": "classification", "columns": {"label": "label_text"}},
    }))
    loop = loop_module.Loop(tmp_path / "out", port=1)
    [leaked] = loop.test_leakage(config)
    assert leaked["count"] == 1 and leaked["locations"][0].startswith(f"{tmp_path / 'test.jsonl'}:1")


def test_a_failed_gate_stops_the_loop_with_its_line(loop_module, tmp_path, monkeypatch):
    run = tmp_path / "round-2"
    run.mkdir()
    gate = {"version": 1, "passed": False, "checks": [
        {"name": "against_previous", "title": "not worse than the run in service", "status": "failed",
         "reason": "accuracy -0.020 [-0.031, -0.009] against round-1; required: not_worse"}]}
    (run / "gate.json").write_text(json.dumps(gate))
    loop = loop_module.Loop(tmp_path / "out", port=1)
    monkeypatch.setattr(loop_module, "TUNESMITH", [sys.executable, "-c", "raise SystemExit(1)"])
    with pytest.raises(loop_module.LoopError, match=r"round-2: gate failed: against_previous \(accuracy -0.020"):
        loop_module.gate_verdict(loop, run, "gate", "gate", str(run))
