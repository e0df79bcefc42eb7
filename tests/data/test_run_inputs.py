"""What a run's stages share: its splits, read once when a stage first asks for them, and the task resolved with
them; splits a caller holds are used as given."""

from __future__ import annotations

from tunesmith.config import validate_config
from tunesmith.data import splits as splits_module
from tunesmith.data.example import Splits
from tunesmith.data.run_inputs import RunInputs


def counting_loads(monkeypatch) -> list[int]:
    loads: list[int] = []
    real = splits_module.load_splits
    monkeypatch.setattr(splits_module, "load_splits", lambda *args, **kwargs: loads.append(1) or real(*args, **kwargs))
    return loads


def test_the_splits_are_read_once_when_first_asked_for(tmp_path, write_jsonl, monkeypatch):
    rows = [{"text": f"message {i}", "label": ["spam", "ham"][i % 2]} for i in range(20)]
    config = validate_config({"data": {"path": write_jsonl(tmp_path / "d.jsonl", rows)}})
    loads = counting_loads(monkeypatch)
    inputs = RunInputs(config)
    assert loads == []  # a stage that reads only the run folder reads no data
    assert inputs.splits is inputs.splits and len(loads) == 1
    task = inputs.task
    assert (task.name, task.labels) == ("classification", ["ham", "spam"]) and len(loads) == 1
    assert RunInputs(config).splits is not inputs.splits  # another run (or command) reads them itself


def test_given_splits_are_used_as_they_are(monkeypatch):
    loads = counting_loads(monkeypatch)
    held = Splits(train=[], validation=[], test=[], format="alpaca")
    inputs = RunInputs(validate_config({"data": {"train": "missing.jsonl"}}), held)
    assert inputs.splits is held and inputs.task.name == "generation" and loads == []
