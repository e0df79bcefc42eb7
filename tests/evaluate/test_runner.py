"""evaluate_run on a fake run folder: eval.json and predictions.jsonl, the base model, leaked test rows, what fails
before any model loads, and the function itself as its named steps."""

from __future__ import annotations

import ast
import inspect
import json

import pytest

import tunesmith.evaluate.runner as runner
from tunesmith.data.run_inputs import RunInputs
from tunesmith.errors import ConfigError, RunError
from tunesmith.evaluate.preference import PAIRS_FILE
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


def test_a_preference_run_with_an_unusable_novelty_model_fails_before_any_model_loads(preference_run, tmp_path,
                                                                                       monkeypatch):
    config, run, splits = preference_run
    monitor = config.monitor.model_copy(update={"embedding_model": str(tmp_path / "no-such-model")})
    config = config.model_copy(update={"monitor": monitor})
    monkeypatch.setattr(runner, "evaluate_preference", lambda *args: pytest.fail("the tuned model was loaded"))
    with pytest.raises(ConfigError, match="monitor.embedding_model"):
        evaluate_run(config, run, RunInputs(config, splits))
    assert not (run.root / PAIRS_FILE).exists() and not run.eval_json.exists()


def test_evaluate_run_reads_as_its_steps():
    """Set up (what is measured against what), score each model, build the result, record it: one named step a
    line, the whole function on one screen."""
    [function] = [node for node in ast.parse(inspect.getsource(runner)).body
                  if isinstance(node, ast.FunctionDef) and node.name == "evaluate_run"]
    steps = function.body[1:]  # after the docstring
    assert len(steps) <= 8 and function.end_lineno - steps[0].lineno < 10
    called = [step.value.func.id for step in steps if isinstance(step, (ast.Assign, ast.Expr))
              and isinstance(step.value, ast.Call)]
    assert called[0] == "_set_up" and called[-1] == "_record"
