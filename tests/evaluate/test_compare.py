"""The base-vs-tuned comparison table: aligned plain text, the unleaked columns, and compare_run."""

from __future__ import annotations

import json

from tunesmith.evaluate.compare import baseline_verdict, best_baseline, compare_run, comparison_table, format_comparison
from tunesmith.evaluate.runner import evaluate_run
from tunesmith.json_files import read_jsonl


def test_format_comparison_is_an_aligned_table():
    result = {
        "task": "classification", "num_examples": 3,
        "base": {"accuracy": 0.5, "loss": 2.0, "per_class": {}},
        "tuned": {"accuracy": 0.75, "loss": 1.25, "per_class": {}},
        "delta": {"accuracy": 0.25, "loss": -0.75},
    }
    result["base"]["f1"], result["tuned"]["f1"], result["delta"]["f1"] = 0.5, 0.5, -1e-9
    assert format_comparison(result) == "\n".join([
        "classification on 3 test rows",
        "metric   |   base |  tuned |   delta",
        "---------+--------+--------+--------",
        "accuracy | 0.5000 | 0.7500 | +0.2500",
        "loss     | 2.0000 | 1.2500 | -0.7500",
        "f1       | 0.5000 | 0.5000 | +0.0000",
    ])


def test_compare_run_evaluates_the_base_model_when_eval_json_lacks_it(run_folder):
    first = evaluate_run(run_folder.config(), run_folder, include_base=False)
    assert first["base"] is None and first["delta"] == {}
    assert read_jsonl(run_folder.predictions)[0]["base_prediction"] is None

    table = compare_run(run_folder.config(), run_folder)
    result = json.loads(run_folder.eval_json.read_text(encoding="utf-8"))
    assert result["base"] is not None
    assert table.splitlines()[0].startswith("classification on 3 test rows; baselines trained on the run's ")
    assert table.splitlines()[1].split() == ["metric", "|", "base", "|", "tuned", "|", "delta", "|", "majority", "|",
                                             "tfidf_logreg"]
    accuracy_row = next(line for line in table.splitlines() if line.startswith("accuracy"))
    assert accuracy_row.split("|")[2].strip() == f"{result['tuned']['accuracy']:.4f}"


def test_unleaked_columns_sit_beside_the_full_test_figures():
    result = {
        "task": "classification", "num_examples": 10,
        "base": {"accuracy": 0.5, "loss": 2.0}, "tuned": {"accuracy": 0.9, "loss": 0.5},
        "unleaked": {"num_examples": 8, "base": {"accuracy": 0.5}, "tuned": {"accuracy": 0.875}},
    }
    table = comparison_table(result)
    assert table.caption == ("classification on 10 test rows; 2 of them also in train, so the 'unleaked' columns "
                             "score the other 8")
    assert table.header == ["metric", "base", "tuned", "delta", "base, unleaked", "tuned, unleaked",
                            "delta, unleaked"]
    assert table.rows == [["accuracy", "0.5000", "0.9000", "+0.4000", "0.5000", "0.8750", "+0.3750"],
                          ["loss", "2.0000", "0.5000", "-1.5000", "not available", "not available", "not available"]]


def test_compare_against_a_previous_run_scores_both_models_on_this_runs_test_rows(run_folder, tmp_path):
    import shutil

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunesmith.evaluate.runner import evaluate_against
    from tunesmith.run_dir import RunDir

    previous = RunDir(tmp_path / "previous")
    shutil.copytree(run_folder.root, previous.root)
    shutil.rmtree(previous.best)
    model = AutoModelForCausalLM.from_pretrained(run_folder.config().model.name)
    get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False)).save_pretrained(
        previous.best)

    itself = evaluate_against(run_folder.config(), run_folder, run_folder)
    assert itself["base"] == itself["tuned"]  # the same model on the same rows: the comparison has no bias
    result = evaluate_against(run_folder.config(), run_folder, previous)
    assert result["against"] == "previous" and result["tuned"] == itself["tuned"]
    assert result["base"]["loss"] != result["tuned"]["loss"]
    table = compare_run(run_folder.config(), run_folder, against=previous).splitlines()
    # This run's baselines were scored on the same rows, so they stay beside the two models.
    assert table[1].split() == ["metric", "|", "previous", "|", "run", "|", "delta", "|", "majority", "|",
                                "tfidf_logreg"]
    assert "previous run previous" in table[0]


def test_baselines_get_a_column_each_also_on_the_unleaked_rows():
    result = {
        "task": "classification", "num_examples": 10,
        "base": {"accuracy": 0.5, "loss": 2.0}, "tuned": {"accuracy": 0.9, "loss": 0.5},
        "baselines": {"tfidf_logreg": {"accuracy": 0.8, "train_seconds": 1.25, "predict_seconds": 0.1},
                      "majority": {"accuracy": 0.6, "train_seconds": 0.0, "predict_seconds": 0.0},
                      "tfidf_svm": {"skipped": "could not be trained: one class"}},
        "unleaked": {"num_examples": 8, "base": {"accuracy": 0.5}, "tuned": {"accuracy": 0.875},
                     "baselines": {"tfidf_logreg": {"accuracy": 0.75}, "majority": {"accuracy": 0.625},
                                   "tfidf_svm": {"skipped": "could not be trained: one class"}}},
    }
    table = comparison_table(result)
    assert table.header == ["metric", "base", "tuned", "delta", "tfidf_logreg", "majority", "tfidf_svm",
                            "base, unleaked", "tuned, unleaked", "delta, unleaked", "tfidf_logreg, unleaked",
                            "majority, unleaked", "tfidf_svm, unleaked"]
    assert table.rows[0] == ["accuracy", "0.5000", "0.9000", "+0.4000", "0.8000", "0.6000", "not available",
                             "0.5000", "0.8750", "+0.3750", "0.7500", "0.6250", "not available"]
    assert table.rows[1][4:7] == ["not available"] * 3  # a baseline has no loss
    assert table.caption.endswith("; baselines trained on the run's training rows: tfidf_logreg 1.2s, majority 0.0s, "
                                  "tfidf_svm skipped (could not be trained: one class)")
    assert format_comparison(result).splitlines()[1].split("|")[4].strip() == "tfidf_logreg"


def test_baseline_verdict_names_the_best_baseline_plainly():
    result = {"task": "classification", "tuned": {"accuracy": 0.983},
              "baselines": {"majority": {"accuracy": 0.856}, "tfidf_logreg": {"accuracy": 0.973}}}
    assert baseline_verdict(result) == ("The tuned model beats TF-IDF + logistic regression, the best baseline, by "
                                        "+0.0100 accuracy (0.9830 vs 0.9730).")
    assert baseline_verdict({**result, "tuned": {"accuracy": 0.97}}) == (
        "The tuned model does not beat TF-IDF + logistic regression, the best baseline: accuracy 0.9700 vs 0.9730 "
        "(-0.0030).")
    regression = {"task": "regression", "tuned": {"mse": 0.5},
                  "baselines": {"mean": {"mse": 2.0}, "tfidf_ridge": {"mse": 0.75}}}
    assert best_baseline(regression, "mse") == ("tfidf_ridge", 0.75)  # lower is better
    assert baseline_verdict(regression) == ("The tuned model beats TF-IDF + ridge regression, the best baseline, by "
                                            "-0.2500 mse (0.5000 vs 0.7500).")
    assert baseline_verdict({"task": "generation", "tuned": {"rouge_l": 0.4}, "baselines": {}}) is None
