"""evaluate_run on a fake run folder: eval.json and predictions.jsonl, the base model, leaked test rows."""

from __future__ import annotations

import json

import pytest

from tunesmith.data.run_inputs import RunInputs
from tunesmith.errors import RunError
from tunesmith.evaluate.runner import evaluate_run
from tunesmith.json_files import read_jsonl


def test_evaluate_run_writes_eval_json_and_predictions(run_folder):
    result = evaluate_run(run_folder.config(), run_folder, RunInputs(run_folder.config()))
    assert json.loads(run_folder.eval_json.read_text(encoding="utf-8")) == result
    assert result["task"] == "classification"
    assert result["labels"] == ["ham", "spam"]
    assert result["num_examples"] == 3
    for name in ("accuracy", "f1", "loss", "perplexity"):
        assert result["delta"][name] == pytest.approx(result["tuned"][name] - result["base"][name])
    assert "per_class" not in result["delta"]

    lines = read_jsonl(run_folder.predictions)
    assert [line["location"].rsplit(":", 1)[1] for line in lines] == ["1", "2", "3"]
    assert lines[0]["prompt"].endswith("WINNER!! claim your cash")
    assert [line["reference"] for line in lines] == ["spam", "ham", "spam"]
    for line in lines:
        assert set(line) == {
            "location", "prompt", "reference", "base_prediction", "tuned_prediction", "base_correct", "tuned_correct",
            "base_scores", "tuned_scores", "baseline_predictions",
        }
        assert set(line["baseline_predictions"]) == {"majority", "tfidf_logreg"}  # each baseline's answer
        assert line["tuned_correct"] == (line["tuned_prediction"] == line["reference"])
        assert line["base_scores"] != line["tuned_scores"]  # the adapter is not a no-op
    assert result["tuned"]["accuracy"] == pytest.approx(sum(line["tuned_correct"] for line in lines) / 3)


def test_evaluate_run_needs_a_trained_model(run_folder):
    import shutil

    shutil.rmtree(run_folder.best)
    with pytest.raises(RunError, match="run `tunesmith train` first"):
        evaluate_run(run_folder.config(), run_folder, RunInputs(run_folder.config()))


def test_test_rows_leaked_from_train_are_scored_apart(run_folder, write_jsonl):
    config = run_folder.config()
    test = [{"text": "free prize call now", "label": "spam"},  # the same row as train's first: leaked
            {"text": "are we still meeting?", "label": "ham"}, {"text": "free cash reward", "label": "spam"}]
    write_jsonl(config.data.test, test)
    result = evaluate_run(config, run_folder, RunInputs(config))
    assert result["leakage"] == {"checked": True, "leaked_rows": 1, "locations": [f"{config.data.test}:1"]}
    unleaked = result["unleaked"]
    assert unleaked["num_examples"] == 2 and "loss" not in unleaked["tuned"]
    lines = read_jsonl(run_folder.predictions)
    for side in ("base", "tuned"):
        assert unleaked[side]["accuracy"] == pytest.approx(sum(line[f"{side}_correct"] for line in lines[1:]) / 2)
    assert unleaked["delta"]["accuracy"] == pytest.approx(unleaked["tuned"]["accuracy"] - unleaked["base"]["accuracy"])


def test_no_leaked_row_means_no_unleaked_block(run_folder):
    result = evaluate_run(run_folder.config(), run_folder, RunInputs(run_folder.config()), include_base=False)
    assert result["leakage"]["leaked_rows"] == 0 and result["unleaked"] is None
