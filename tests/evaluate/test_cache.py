"""The base-model evaluation cache: a second evaluation with the same key reuses the base model's results without
loading it and writes the same eval.json and predictions; every key ingredient changes the key; a damaged entry is
evaluated again; a cache that cannot be written costs a warning; `evaluate.cache_base: false` turns it off."""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import replace

import pytest

from tunesmith.config import EvaluateConfig, apply_overrides, validate_config
from tunesmith.data.run_inputs import RunInputs
from tunesmith.data.splits import load_run_splits
from tunesmith.data.task import Task
from tunesmith.errors import RunError
from tunesmith.evaluate import cache, runner
from tunesmith.evaluate.cache import SCORING_SETTINGS, eval_cache_root, evaluation_key, key_ingredients
from tunesmith.evaluate.runner import evaluate_run
from tunesmith.models import load_tokenizer

NOT_SCORING = {"task", "compare_base", "cache_base", "num_examples", "baselines", "reference", "output_schema"}
"""`evaluate.*` settings that do not change the base model's results (`task` enters the key resolved)."""


@pytest.fixture(autouse=True)
def own_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))


@pytest.fixture()
def base_loads(monkeypatch):
    """How many times the base model is loaded."""
    loads = []
    load = runner.load_base_model

    def counted(*args, **kwargs):
        loads.append(args)
        return load(*args, **kwargs)

    monkeypatch.setattr(runner, "load_base_model", counted)
    return loads


def with_settings(config, *overrides: str):
    return validate_config(apply_overrides(config.model_dump(mode="json"), list(overrides)))


def run_files(run) -> tuple[dict, str]:
    """eval.json without the cache's own fields and the baselines' timings (wall-clock, never the same twice), and
    predictions.jsonl as text."""
    result = json.loads(run.eval_json.read_text(encoding="utf-8"))
    for name in ("base_from_cache", "base_cache"):
        result.pop(name)
    for scores in result["baselines"].values():
        for name in ("train_seconds", "predict_seconds"):
            scores.pop(name)
    return result, run.predictions.read_text(encoding="utf-8")


def test_second_evaluation_reuses_the_base_model_results_and_says_so(run_folder, monkeypatch, capsys):
    config = run_folder.config()
    first = evaluate_run(config, run_folder, RunInputs(config))
    assert first["base_from_cache"] is False and len(first["base_cache"]["key"]) == 32
    computed = run_files(run_folder)

    def no_base_model(*args, **kwargs):
        raise AssertionError("the base model was loaded although its evaluation is cached")

    monkeypatch.setattr(runner, "load_base_model", no_base_model)
    capsys.readouterr()
    second = evaluate_run(config, run_folder, RunInputs(config))
    assert second["base_from_cache"] is True and second["base_cache"] == first["base_cache"]
    said = " ".join(capsys.readouterr().err.split())  # the console wraps long lines
    assert f"base model: reusing its evaluation from the cache (key {first['base_cache']['key']}, computed " in said
    assert run_files(run_folder) == computed
    assert second["base"] == first["base"] and second["tuned"] == first["tuned"]


def test_a_changed_test_row_is_evaluated_again(run_folder, write_jsonl, base_loads):
    config = run_folder.config()
    evaluate_run(config, run_folder, RunInputs(config))
    rows = [json.loads(line) for line in open(config.data.test, encoding="utf-8")]
    write_jsonl(config.data.test, [{**rows[0], "text": rows[0]["text"] + "!"}, *rows[1:]])
    result = evaluate_run(config, run_folder, RunInputs(config))
    assert result["base_from_cache"] is False and len(base_loads) == 2


def test_each_key_ingredient_changes_the_key(run_folder, tmp_path):
    from safetensors.torch import load_file, save_file

    config = run_folder.config()
    examples = load_run_splits(config.data).test
    labels = ["ham", "spam"]

    def key(config=config, examples=examples, task="classification", labels=labels):
        tokenizer = load_tokenizer(config.model)
        return evaluation_key(key_ingredients(config, tokenizer, examples, Task.of(task, labels)))

    def model_copy(name: str, change_weights: bool):
        folder = shutil.copytree(config.model.name, tmp_path / name)
        if change_weights:
            weights = load_file(folder / "model.safetensors")
            weights["model.norm.weight"][0] += 1e-3
            save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
        return with_settings(config, f"model.name={folder}")

    baseline = key()
    assert key() == baseline
    assert key(model_copy("same-weights", change_weights=False)) == baseline  # the content counts, not the path
    changed = {
        "weights": key(model_copy("other-weights", change_weights=True)),
        "a test row": key(examples=[replace(examples[0], messages=examples[0].messages[:-1] + (
            {"role": "assistant", "content": "ham"},)), *examples[1:]]),
        "the row order": key(examples=examples[::-1]),
        "a label on a row": key(examples=[replace(examples[0], label="ham"), *examples[1:]]),
        "the task": key(task="generation", labels=None),
        "the label order": key(labels=labels[::-1]),
        "the chat template": key(with_settings(config, "model.chat_template=plain")),
        "the dtype": key(with_settings(config, "model.dtype=bfloat16")),
        "max_new_tokens": key(with_settings(config, "evaluate.max_new_tokens=5")),
        "batch_size": key(with_settings(config, "evaluate.batch_size=3")),
        "classification_mode": key(with_settings(config, "evaluate.classification_mode=generate")),
        "metrics": key(with_settings(config, "evaluate.metrics=[accuracy]")),
        "max_length": key(with_settings(config, "data.max_length=64")),
        "the system prompt": key(examples=load_run_splits(with_settings(config, "data.system_prompt=Be brief.").data
                                                          ).test),
    }
    assert {name for name, value in changed.items() if value == baseline} == set()
    assert len(set(changed.values())) == len(changed)


def test_every_evaluate_setting_is_either_in_the_key_or_cannot_change_the_scores():
    assert set(EvaluateConfig.model_fields) == set(SCORING_SETTINGS) | NOT_SCORING


@pytest.mark.parametrize("damage", ["entry not JSON", "a row missing", "predictions gone", "another key"])
def test_a_damaged_entry_is_evaluated_again_with_a_warning(run_folder, base_loads, caplog, damage):
    config = run_folder.config()
    key = evaluate_run(config, run_folder, RunInputs(config))["base_cache"]["key"]
    computed = run_files(run_folder)
    entry = eval_cache_root() / key
    if damage == "entry not JSON":
        (entry / "entry.json").write_text('{"key": "', encoding="utf-8")
    elif damage == "a row missing":
        lines = (entry / "predictions.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
        (entry / "predictions.jsonl").write_text("".join(lines[:-1]), encoding="utf-8")
    elif damage == "predictions gone":
        (entry / "predictions.jsonl").unlink()
    else:
        stored = json.loads((entry / "entry.json").read_text(encoding="utf-8"))
        (entry / "entry.json").write_text(json.dumps({**stored, "key": "0" * 32}), encoding="utf-8")

    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        again = evaluate_run(config, run_folder, RunInputs(config))
    assert again["base_from_cache"] is False and len(base_loads) == 2
    assert f"ignoring the damaged cached base-model evaluation {entry}" in caplog.text
    assert run_files(run_folder) == computed
    again = evaluate_run(config, run_folder, RunInputs(config))
    assert again["base_from_cache"] is True  # the damaged entry was replaced


def test_cache_base_false_neither_reads_nor_writes_the_cache(run_folder, base_loads):
    config = run_folder.config()
    evaluate_run(config, run_folder, RunInputs(config))
    off = with_settings(config, "evaluate.cache_base=false")
    result = evaluate_run(off, run_folder, RunInputs(off))
    assert result["base_from_cache"] is False and result["base_cache"] is None and len(base_loads) == 2
    shutil.rmtree(eval_cache_root())
    evaluate_run(off, run_folder, RunInputs(off))
    assert not eval_cache_root().exists()


def test_a_cache_that_cannot_be_written_costs_a_warning_not_the_evaluation(run_folder, monkeypatch, caplog):
    def read_only(folder):
        raise RunError(f"cannot write {folder}: read-only file system")

    monkeypatch.setattr(cache, "staged_folder", read_only)
    with caplog.at_level(logging.WARNING, logger="tunesmith"):
        config = run_folder.config()
        result = evaluate_run(config, run_folder, RunInputs(config))
    assert result["base"] and result["base_cache"] is None and result["base_from_cache"] is False
    assert "the base model's evaluation is not kept in the cache: cannot write" in caplog.text
