"""The classic baselines on a run config's own data, without the LLM: what `evaluate.baselines` adds to eval.json.

    python benchmarks/baselines.py [CONFIG] [--baselines majority,tfidf_logreg,tfidf_svm] [--repeats 5]

CONFIG defaults to the demo (`examples/sms_spam/config.yaml`). Its data is read as a run reads it
(`load_run_splits`: `data.max_train_rows` sampled with the split seed, the test file); each baseline is trained on
the training rows and scored on the test rows by `tunesmith.evaluate.baselines`, as `tunesmith eval` does, and
also on the test rows the data check does not find in train (eval.json's ``unleaked``). Train and predict times are
medians of `--repeats` fits (reading the data is not timed).

For classification one more arm, ``logreg_unweighted``, is the same TF-IDF + logistic regression without the
balanced class weights `tfidf_logreg` uses: the measurement behind that choice.

Prints one line per baseline, then JSON as the last line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from tunesmith.config import load_config
from tunesmith.data.check.data_report import leaked_rows
from tunesmith.data.run_inputs import RunInputs
from tunesmith.evaluate.baselines import BaselineResult, baseline_scores, baseline_text, run_baselines
from tunesmith.predict.answers import truth_of

DEMO_CONFIG = Path(__file__).resolve().parents[1] / "examples" / "sms_spam" / "config.yaml"


def unweighted_logreg(splits, config) -> BaselineResult:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    def texts(rows):
        return [baseline_text(example, splits.format, config.data, splits.labels) for example in rows]

    model = make_pipeline(TfidfVectorizer(ngram_range=(1, 2)), LogisticRegression(max_iter=1000))
    started = time.perf_counter()
    model.fit(texts(splits.train), [truth_of(example) for example in splits.train])
    trained = time.perf_counter()
    predictions = [str(label) for label in model.predict(texts(splits.test))]
    return BaselineResult("logreg_unweighted", predictions, trained - started, time.perf_counter() - trained)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(DEMO_CONFIG))
    parser.add_argument("--baselines", help="comma-separated names (default: every baseline of the task)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    config = load_config(args.config)
    inputs = RunInputs(config)
    splits, task = inputs.splits, inputs.task
    names = args.baselines.split(",") if args.baselines else {
        "classification": ["majority", "tfidf_logreg", "tfidf_svm"], "regression": ["mean", "tfidf_ridge"],
    }[task.name]
    leaked = leaked_rows(splits, "test", config.data.check.near_duplicate_threshold) or set()
    unleaked = [index for index, example in enumerate(splits.test) if example.location not in leaked]

    runs = []
    for _ in range(args.repeats):
        run = run_baselines(names, task, splits, config.data, config.train.seed)
        runs.append(run + ([unweighted_logreg(splits, config)] if task.name == "classification" else []))
    figures = {}
    for index, name in enumerate(result.name for result in runs[0]):
        results = [run[index] for run in runs]
        assert all(result.predictions == results[0].predictions for result in results), "seeded: same predictions"
        scores = baseline_scores(results[0], task, splits.test)
        scores["train_seconds"] = statistics.median(result.train_seconds for result in results)
        scores["predict_seconds"] = statistics.median(result.predict_seconds for result in results)
        scores["unleaked"] = baseline_scores(results[0], task, splits.test, unleaked, timings=False)
        for block in (scores, scores["unleaked"]):
            block.pop("confusion_matrix", None)
        figures[name] = scores
        headline = ", ".join(f"{key} {value:.3f}" for key, value in scores.items() if isinstance(value, float))
        print(f"{name}: {headline}")
    print(json.dumps({"config": args.config, "task": task.name, "train_rows": len(splits.train),
                      "test_rows": len(splits.test), "unleaked_test_rows": len(unleaked), "repeats": args.repeats,
                      "baselines": figures}))


if __name__ == "__main__":
    main()
