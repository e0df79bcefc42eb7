"""The base-vs-tuned comparison table of an eval.json dict: aligned plain text, the unleaked columns, a column per
baseline, the verdict against the best baseline, and several runs' test sets (ranked only when the same)."""

from __future__ import annotations

from tunesmith.results import baseline_verdict, best_baseline, comparison_table, format_comparison
from tunesmith.results.comparison import ScoredRows, comparable_test_sets, fingerprint_rows, rank_runs


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


def test_reading_results_loads_no_model_code():
    """The report, the model card and the web UI read results through this package: importing it must not pull in
    torch, the models or a stage."""
    import subprocess
    import sys

    script = ("import sys, tunesmith.results\n"
              "loaded = [name for name in ('torch', 'tunesmith.models', 'tunesmith.train', 'tunesmith.evaluate')\n"
              "          if name in sys.modules]\n"
              "assert loaded == [], loaded\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


# ---- several runs: their test sets, and a ranking only on the same rows --------------------------------------------

def _rows(count: int, text: str = "message") -> list[dict]:
    return [{"prompt": f"{text} {n}", "reference": "spam" if n % 3 else "ham", "tuned_prediction": "ham"}
            for n in range(count)]


def test_a_test_set_is_its_prompts_and_references_in_any_order():
    rows = _rows(5)
    assert fingerprint_rows(rows) == fingerprint_rows(list(reversed(rows))) == fingerprint_rows(
        [row | {"tuned_prediction": "spam", "location": "elsewhere.jsonl:9"} for row in rows])
    assert len(fingerprint_rows(rows)) == 12
    assert fingerprint_rows(rows) != fingerprint_rows(rows[:4])
    assert fingerprint_rows(rows) != fingerprint_rows([rows[0] | {"reference": "other"}, *rows[1:]])
    assert fingerprint_rows(rows) != fingerprint_rows(rows + rows[:1])  # a row twice counts twice
    assert fingerprint_rows([]) is None
    assert fingerprint_rows([{"location": "test.jsonl:1", "prediction": "spam"}]) is None  # no prompt: unknown


def test_runs_on_different_rows_are_said_to_be_so_and_never_ranked():
    big, small = ScoredRows(1000, fingerprint_rows(_rows(1000))), ScoredRows(80, fingerprint_rows(_rows(80)))
    assert comparable_test_sets({"demo": big, "short": small}) == (
        False, "These runs were scored on different test sets (1,000 rows vs 80 rows): their metrics are not "
               "comparable.")
    other = ScoredRows(80, fingerprint_rows(_rows(80, "another")))
    comparable, sentence = comparable_test_sets({"a": small, "b": other})
    assert not comparable and sentence == (f"These runs were scored on different test sets (80 rows (test set "
                                           f"{small.fingerprint}) vs 80 rows (test set {other.fingerprint})): their "
                                           "metrics are not comparable.")
    comparable, sentence = comparable_test_sets({"a": small, "b": ScoredRows(80, None)})
    assert not comparable and sentence.startswith("Whether these runs were scored on the same 80 test rows cannot "
                                                  "be checked (b: no record of the rows")
    comparable, sentence = comparable_test_sets({"a": small, "b": small, "c": ScoredRows(None, None)})
    assert comparable and sentence == (f"All 2 evaluated runs were scored on the same 80 test rows (test set "
                                       f"{small.fingerprint}). Not evaluated yet, so not ranked: c.")
    assert comparable_test_sets({"a": small, "c": ScoredRows(None, None)})[0] is False
    assert ScoredRows(1000, "abc").describe() == "1,000 rows (test set abc)"
    assert ScoredRows(80, None).describe() == "80 rows (which rows: unknown)"


def test_runs_rank_by_the_tasks_first_metric_lower_first_for_an_error():
    classified = {"a": {"task": "classification", "tuned": {"accuracy": 0.8}},
                  "b": {"task": "classification", "tuned": {"accuracy": 0.9}}}
    assert rank_runs(classified) == ("accuracy", [("b", 0.9), ("a", 0.8)])
    regressed = {"a": {"task": "regression", "tuned": {"mse": 0.3}}, "b": {"task": "regression", "tuned": {"mse": 0.1}}}
    assert rank_runs(regressed)[1][0] == ("b", 0.1)
    assert rank_runs({**classified, "c": {"task": "generation", "tuned": {"rougeL": 0.5}}}) is None
