"""Classic baselines: exact scores of the constant ones, a linear text model that learns a separable set, what a
baseline reads of a row, rows it cannot learn from, and the `baselines` block evaluate_run writes."""

from __future__ import annotations

import json
import statistics

import pytest

from tunesmith.config import DataConfig, EvaluateConfig
from tunesmith.data.example import Example, Splits
from tunesmith.data.formats import to_example
from tunesmith.data.rows import Row
from tunesmith.data.run_inputs import RunInputs
from tunesmith.data.task import Task
from tunesmith.evaluate.baselines import NOT_HELD_IN_MEMORY, baseline_scores, baseline_text, run_baselines
from tunesmith.evaluate.runner import evaluate_run
from tunesmith.predict.metrics import classification_metrics

DATA = DataConfig(train="train.jsonl")
SPAM = Task.of("classification", ["ham", "spam"])


def labelled(text: str, label: str, line: int) -> Example:
    return Example(messages=({"role": "user", "content": text}, {"role": "assistant", "content": label}),
                   location=f"mem.jsonl:{line}", label=label)


def scored(text: str, target: float, line: int) -> Example:
    return Example(messages=({"role": "user", "content": text}, {"role": "assistant", "content": repr(target)}),
                   location=f"mem.jsonl:{line}", target=target)


def splits(train: list[Example], test: list[Example], fmt: str, labels: list[str] | None = None) -> Splits:
    return Splits(train=train, validation=[], test=test, format=fmt, labels=labels)


def separable(count: int, offset: int = 0) -> list[Example]:
    """Spam and ham that share no word: every third row spam."""
    spam = ["win a free prize now", "claim your cash reward", "free entry to win cash"]
    ham = ["see you at lunch tomorrow", "are we still meeting tonight", "I will bring the notes"]
    return [labelled(spam[i % 3] if i % 3 == 0 else ham[i % 3], "spam" if i % 3 == 0 else "ham", i + 1)
            for i in range(offset, offset + count)]


def only(name: str, task: str, data: Splits) -> tuple:
    (result,) = run_baselines([name], Task.of(task, data.labels), data, DATA, seed=0)
    return result


def test_majority_scores_exactly_the_majority_share():
    train, test = separable(30), separable(10, offset=30)
    result = only("majority", "classification", splits(train, test, "classification", ["ham", "spam"]))
    assert result.predictions == ["ham"] * 10
    scores = baseline_scores(result, SPAM, test)
    assert scores["accuracy"] == sum(example.label == "ham" for example in test) / 10
    assert scores["train_seconds"] >= 0 and scores["predict_seconds"] >= 0


@pytest.mark.parametrize("name", ["tfidf_logreg", "tfidf_svm"])
def test_a_linear_text_model_learns_a_separable_set(name):
    train, test = separable(60), separable(15, offset=60)
    result = only(name, "classification", splits(train, test, "classification", ["ham", "spam"]))
    scores = baseline_scores(result, SPAM, test)
    assert scores["accuracy"] == 1.0 and scores["per_class"]["spam"]["f1"] == 1.0


def test_mean_baseline_mse_is_the_variance():
    words = ["awful film", "poor film", "good film", "great film", "fine film"]
    rows = [scored(text, target, i) for i, (text, target) in enumerate(zip(words, [1.0, 2.5, 4.0, 4.5, 3.0]))]
    result = only("mean", "regression", splits(rows, rows, "regression"))
    scores = baseline_scores(result, Task.of("regression"), rows)
    assert scores["mse"] == pytest.approx(statistics.pvariance([1.0, 2.5, 4.0, 4.5, 3.0]), rel=1e-12)
    assert scores["pearson"] is None  # a constant prediction has no correlation
    ridge = only("tfidf_ridge", "regression", splits(rows, rows, "regression"))
    assert baseline_scores(ridge, Task.of("regression"), rows)["mse"] < scores["mse"]


def test_scores_follow_evaluate_metrics_and_a_subset_of_rows():
    train, test = separable(30), separable(10, offset=30)
    result = only("majority", "classification", splits(train, test, "classification", ["ham", "spam"]))
    scores = baseline_scores(result, Task.of("classification", ["ham", "spam"], ["accuracy"]), test, rows=[0, 1],
                             timings=False)
    assert set(scores) == {"accuracy", "per_class", "confusion_matrix"}
    assert scores["accuracy"] == 0.5  # rows 31 and 32: spam, then ham


def test_a_baseline_reads_the_row_text_without_the_instruction():
    labels = ["ham", "spam"]
    data = DataConfig(train="train.jsonl", system_prompt="Be brief.")
    example = to_example(Row("d.jsonl", 1, {"text": "WIN a prize!", "label": "spam"}), "classification", data, labels)
    assert baseline_text(example, "classification", data, labels) == "WIN a prize!"
    rated = to_example(Row("d.jsonl", 2, {"text": "great film", "score": 4.0}), "regression", data, None)
    assert baseline_text(rated, "regression", data, None) == "great film"
    plain = to_example(Row("d.jsonl", 3, {"prompt": "Is this spam? WIN", "completion": "spam"}), "prompt_completion",
                       data, None)
    assert baseline_text(plain, "prompt_completion", data, None) == "Is this spam? WIN"


def test_rows_a_baseline_cannot_learn_from_skip_it_with_the_reason():
    one_label = [labelled("see you at lunch", "ham", 1), labelled("call me later", "ham", 2)]
    data = splits(one_label, one_label, "classification", ["ham", "spam"])
    majority, logreg = run_baselines(["majority", "tfidf_logreg"], SPAM, data, DATA, seed=0)
    assert majority.predictions == ["ham", "ham"]
    assert logreg.predictions is None and logreg.skipped.startswith("could not be trained:")
    assert baseline_scores(logreg, SPAM, one_label) == {
        "skipped": logreg.skipped}
    streamed = DataConfig(train="t.jsonl", validation="v.jsonl", test="s.jsonl", streaming=True)
    (skipped,) = run_baselines(["majority"], SPAM, splits([], one_label, "classification"), streamed, 0)
    assert skipped.skipped == NOT_HELD_IN_MEMORY
    assert run_baselines([], Task.of("generation"), splits([], one_label, "messages"), DATA, 0) == []


def test_evaluate_run_writes_the_baselines_beside_the_models(run_folder):
    config = run_folder.config()
    result = evaluate_run(config, run_folder, RunInputs(config), include_base=False)
    assert json.loads(run_folder.eval_json.read_text(encoding="utf-8"))["baselines"] == result["baselines"]
    assert list(result["baselines"]) == ["majority", "tfidf_logreg"]  # evaluate.baselines: auto
    for scores in result["baselines"].values():
        assert {"accuracy", "f1", "train_seconds", "predict_seconds"} <= set(scores) and "loss" not in scores
    # Train has one spam and one ham row, so the majority class is the first label; test has 1 ham in 3.
    assert result["baselines"]["majority"]["accuracy"] == pytest.approx(1 / 3)


def test_evaluate_run_scores_the_baselines_on_the_unleaked_rows_too(run_folder, write_jsonl):
    config = run_folder.config().model_copy(update={"evaluate": EvaluateConfig(baselines=["majority"])})
    write_jsonl(config.data.test, [{"text": "free prize call now", "label": "spam"},  # train's first row: leaked
                                   {"text": "are we still meeting?", "label": "ham"},
                                   {"text": "free cash reward", "label": "spam"}])
    result = evaluate_run(config, run_folder, RunInputs(config), include_base=False)
    assert list(result["baselines"]) == ["majority"]
    # The majority class, ham, on the two rows not leaked: spam and ham.
    assert result["unleaked"]["baselines"] == {
        "majority": classification_metrics(["ham", "spam"], ["ham", "ham"], ["ham", "spam"])}
