"""evaluate_run on a fake run folder: eval.json and predictions.jsonl, the base model, leaked test rows."""

from __future__ import annotations

import json

import pytest

from tunesmith.data.run_inputs import RunInputs
from tunesmith.errors import RunError
from tunesmith.evaluate.runner import evaluate_run
from tunesmith.json_files import read_jsonl
from tunesmith.results.comparison import fingerprint_rows


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
    assert result["test_set"] == fingerprint_rows(lines)  # compare tells runs on other rows by it
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


def test_without_the_base_the_previous_base_results_are_kept_only_for_the_same_rows(run_folder, write_jsonl):
    config = run_folder.config()
    first = evaluate_run(config, run_folder, RunInputs(config))
    predictions = read_jsonl(run_folder.predictions)
    kept = evaluate_run(config, run_folder, RunInputs(config), include_base=False)
    assert kept["base"] == first["base"] and kept["delta"] == first["delta"] and "base_kept" in kept
    assert read_jsonl(run_folder.predictions) == predictions  # the base's answers are kept beside the tuned ones
    write_jsonl(config.data.test, [{"text": "free cash reward", "label": "spam"},
                                   {"text": "lunch at noon?", "label": "ham"}])  # other test rows
    other = evaluate_run(config, run_folder, RunInputs(config), include_base=False)
    assert other["base"] is None and other["delta"] == {}
    assert other["base_skipped"] == ("not evaluated (--no-base); the previous evaluation's base results were dropped: "
                                     "they were computed on other test rows, settings or base model")
    again = evaluate_run(config, run_folder, RunInputs(config), include_base=False)
    assert again["base_skipped"] == "not evaluated (--no-base)"


def test_without_a_key_the_previous_base_results_are_dropped_saying_why(run_folder):
    config = run_folder.config().model_copy(deep=True)
    config.evaluate.cache_base = False
    evaluate_run(config, run_folder, RunInputs(config))
    result = evaluate_run(config, run_folder, RunInputs(config), include_base=False)
    assert result["base"] is None and result["base_skipped"].endswith(
        "nothing says which base model and test rows they were computed on (evaluate.cache_base was off)")
