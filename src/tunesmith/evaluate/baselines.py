"""Classic baselines (`evaluate.baselines`): scikit-learn models trained in seconds on a run's training rows and
scored on its test rows, beside the tuned model, so a reader can tell whether fine-tuning an LLM beat what a
linear model on word counts does.

Pure: examples in, predictions and timings out (`run_baselines`), then metrics (`baseline_scores`). A baseline's
predictions are written as the tuned model's are (a label, or a number's text) and scored by the same
`task_metrics` and `select_metrics`, so every column of the comparison is computed one way.

The models are scikit-learn's with its defaults, except TF-IDF over word 1-2 grams and class weights balanced in
the logistic regression. With its default regularization and every row weighing the same, logistic regression
mostly predicts the majority class when one class is rare (BENCHMARKS.md, "Classic baselines"), which would make
a flattering comparison. Nothing is chosen per dataset, least of all on the test rows. Randomness (LinearSVC's
coordinate descent, solvers that shuffle) takes `train.seed`; the majority class breaks a tie by label order
(scikit-learn's ``DummyClassifier``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from tunesmith.config.schema import DataConfig
from tunesmith.data.example import Example, Splits
from tunesmith.data.formats import text_of_user_turn
from tunesmith.data.task import Task
from tunesmith.evaluate.tasks import last_user_message, select_metrics
from tunesmith.predict.answers import regression_target, task_metrics, truth_of

NOT_HELD_IN_MEMORY = "data.streaming: the training rows are not held in memory"


@dataclass(frozen=True)
class BaselineResult:
    """One baseline on the test rows: its predictions (in row order) and how long fitting and predicting took, in
    seconds; or, when it could not be trained, why (``skipped``) and no predictions."""

    name: str
    predictions: list[str] | None
    train_seconds: float | None = None
    predict_seconds: float | None = None
    skipped: str | None = None


def build_baseline(name: str, seed: int):
    """The unfitted scikit-learn estimator of a baseline name (`tunesmith.config.vocabulary.BASELINES`)."""
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    def tfidf():
        return TfidfVectorizer(ngram_range=(1, 2))

    builders = {
        "majority": lambda: DummyClassifier(strategy="most_frequent"),
        "mean": lambda: DummyRegressor(strategy="mean"),
        # max_iter above the default 100: lbfgs stops short of convergence (with a warning) on some corpora.
        "tfidf_logreg": lambda: make_pipeline(tfidf(), LogisticRegression(class_weight="balanced", max_iter=1000,
                                                                          random_state=seed)),
        "tfidf_svm": lambda: make_pipeline(tfidf(), LinearSVC(random_state=seed)),
        "tfidf_ridge": lambda: make_pipeline(tfidf(), Ridge(random_state=seed)),
    }
    if name not in builders:
        raise ValueError(f"unknown baseline {name!r}")
    return builders[name]()


def baseline_text(example: Example, fmt: str, data_config: DataConfig, labels: list[str] | None) -> str:
    """What every baseline reads of a row: its own text, i.e. the last user message without the instruction that
    classification and regression rows put before the text (`tunesmith.data.formats.text_of_user_turn`; the same
    on every row, so no signal). Rows of other formats, evaluated as a forced task, give their last user message
    whole. The system prompt is left out: it is the same on every row too. ``labels`` is the label set the rows
    were read with (`Splits.labels`): the default classification instruction names it."""
    return text_of_user_turn(last_user_message(example), fmt, data_config, labels)


def run_baselines(names: list[str], task: Task, splits: Splits, data_config: DataConfig,
                  seed: int) -> list[BaselineResult]:
    """Train each named baseline on ``splits.train`` and predict ``splits.test``. Without training rows (data
    streaming) every baseline is skipped; one that cannot be fitted (a single label in train) is skipped with
    scikit-learn's reason while the others still run."""
    if not names:
        return []
    if not splits.train:
        reason = NOT_HELD_IN_MEMORY if data_config.streaming else "the training split has no rows"
        return [BaselineResult(name, None, skipped=reason) for name in names]

    def texts(rows: list[Example]) -> list[str]:
        return [baseline_text(example, splits.format, data_config, splits.labels) for example in rows]

    train_texts, test_texts = texts(splits.train), texts(splits.test)
    if task.name == "classification":
        answers: list = [truth_of(example) for example in splits.train]
    elif task.name == "regression":
        answers = [regression_target(example) for example in splits.train]
    else:
        raise ValueError(f"{task.name} has no baselines")
    return [_fit_and_predict(name, task.name, train_texts, answers, test_texts, seed) for name in names]


def baseline_scores(result: BaselineResult, task: Task, test: list[Example], rows: list[int] | None = None,
                    timings: bool = True) -> dict:
    """eval.json's entry for a baseline: the task metrics the task reports (`Task.metrics`), on every test row or
    only on ``rows`` (indices into ``test``), plus ``train_seconds`` and ``predict_seconds`` when ``timings``; a
    skipped baseline's entry is ``{"skipped": reason}``."""
    if result.predictions is None:
        return {"skipped": result.skipped}
    keep = range(len(test)) if rows is None else rows
    metrics = task_metrics(task, [test[index] for index in keep], [result.predictions[index] for index in keep])
    scores = select_metrics(metrics, task)
    if timings:
        scores.update(train_seconds=result.train_seconds, predict_seconds=result.predict_seconds)
    return scores


def _fit_and_predict(name: str, task: str, train_texts: list[str], answers: list, test_texts: list[str],
                     seed: int) -> BaselineResult:
    model = build_baseline(name, seed)
    started = time.perf_counter()
    try:
        model.fit(train_texts, answers)
    except ValueError as exc:  # scikit-learn's word for data it cannot fit: one class, an empty vocabulary
        return BaselineResult(name, None, skipped=f"could not be trained: {exc}")
    trained = time.perf_counter()
    predicted = model.predict(test_texts)
    done = time.perf_counter()
    # repr: the shortest text that reads back as the same float, so parse_number scores exactly this prediction.
    predictions = [str(value) if task == "classification" else repr(float(value)) for value in predicted]
    return BaselineResult(name, predictions, train_seconds=trained - started, predict_seconds=done - trained)
