"""Fixtures of the gate tests: evaluated classification runs written by hand (no model), whose answers each test
chooses."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunesmith.config import DataConfig, RunConfig, save_config
from tunesmith.json_files import write_json, write_jsonl
from tunesmith.predict.metrics import classification_metrics
from tunesmith.run_dir import RunDir


def gated_run(root: Path, truths: list[str], tuned: list[str], base: list[str] | None = None,
              baselines: dict[str, list[str]] | None = None, leaked: tuple[int, ...] = (), gate: dict | None = None,
              per_row_baselines: bool = True, model_dir: Path | None = None) -> RunDir:
    """An evaluated run folder: test rows labelled ``truths``, the tuned model's answers ``tuned``, the base's and
    each baseline's; the rows at ``leaked`` (indices) found in train; an exported adapter of 1 MiB."""
    root.mkdir(parents=True)
    data = root.parent / f"{root.name}-data"
    data.mkdir()
    texts = [f"message number {index} about {truth}" for index, truth in enumerate(truths)]
    train = [{"text": f"training message {index}", "label": label} for index, label in enumerate(["ham", "spam"] * 4)]
    test_file = data / "test.jsonl"
    write_jsonl(data / "train.jsonl", train)
    write_jsonl(test_file, [{"text": text, "label": truth} for text, truth in zip(texts, truths)])
    settings = {"general_rows": 0, "latency_rows": 0, **(gate or {})}
    config = RunConfig.model_validate({"data": DataConfig(train=str(data / "train.jsonl"), test=str(test_file)),
                                       "gate": settings, "model": {"name": str(model_dir or "default")}})
    run = RunDir(root)
    save_config(config, run.config_path)
    labels = ["ham", "spam"]
    baselines = baselines or {}
    locations = [f"{test_file}:{index + 1}" for index in range(len(truths))]

    def scores(answers):
        return classification_metrics(truths, answers, labels)

    write_json(run.eval_json, {
        "task": "classification", "labels": labels, "num_examples": len(truths),
        "base": scores(base) if base is not None else None, "tuned": scores(tuned),
        "baselines": {name: scores(answers) for name, answers in baselines.items()},
        "leakage": {"checked": True, "leaked_rows": len(leaked), "locations": [locations[i] for i in leaked]},
        "calibration": {"temperature": 1.2, "validation_rows": 10, "test_rows": len(truths),
                        "before": {"rows": len(truths), "ece": 0.04, "ece_interval": [0.02, 0.06]},
                        "after": {"rows": len(truths), "ece": 0.02, "ece_interval": [0.01, 0.03]}},
    })
    lines = []
    for index, (location, text, truth) in enumerate(zip(locations, texts, truths)):
        line = {"location": location, "prompt": text, "reference": truth, "tuned_prediction": tuned[index],
                "base_prediction": base[index] if base is not None else None}
        if baselines and per_row_baselines:
            line["baseline_predictions"] = {name: answers[index] for name, answers in baselines.items()}
        lines.append(line)
    write_jsonl(run.predictions, lines)
    run.adapter.mkdir()
    (run.adapter / "adapter_model.safetensors").write_bytes(b"\0" * 2**20)
    return run


@pytest.fixture()
def make_gated_run(tmp_path):
    """``make_gated_run(name, truths, tuned, base=None, baselines=None, leaked=(), gate=None)`` → `gated_run`'s
    folder under the test's tmp_path."""
    return lambda name, *args, **kwargs: gated_run(tmp_path / name, *args, **kwargs)
