"""The `evaluate:` section: what the test split measures, against which baselines, and what evaluation records."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from tunesmith.config.section import ConfigSection
from tunesmith.config.vocabulary import ALWAYS_REPORTED, AUTO_BASELINES, BASELINES, TASK_METRICS, Baseline, TaskName
from tunesmith.errors import ConfigError


class EvaluateConfig(ConfigSection):
    task: Literal["auto", TaskName] = "auto"
    """What the test split measures. `auto` follows the data format (classification and regression rows give
    those tasks, everything else is generation)."""
    metrics: list[str] | None = None
    """Metrics to report; null reports all of the task's metrics. Classification: accuracy, precision, recall,
    f1. Regression: mse, mae, pearson. Generation: bleu, rouge_l, exact_match. Always: loss, perplexity."""
    classification_mode: Literal["likelihood", "generate"] = "likelihood"
    """`likelihood` scores every label and picks the most likely; `generate` decodes and matches the label."""
    max_new_tokens: int = Field(64, ge=1)
    """Generation budget per test row."""
    batch_size: int = Field(16, ge=1)
    """Rows per evaluation batch."""
    compare_base: bool = True
    """Also evaluate the base model on the same rows."""
    cache_base: bool = True
    """Keep the base model's evaluation (metrics and per-row predictions, under the tunesmith cache) keyed on its
    weights, the tokenizer and chat template, the test rows and every setting that changes the scores; a second
    run with the same key reuses it instead of evaluating the base model again, and says so."""
    baselines: Literal["auto"] | list[Baseline] = "auto"
    """Classic models trained (scikit-learn, seconds on a CPU) on the run's training rows and scored on its test
    rows beside the tuned model. Classification: `majority` (the majority class), `tfidf_logreg` (TF-IDF of word
    1-2 grams + logistic regression, classes weighted to balance), `tfidf_svm` (TF-IDF + linear SVM).
    Regression: `mean` (the mean target), `tfidf_ridge` (TF-IDF + ridge regression). `auto`: `majority` and
    `tfidf_logreg`, or `mean` and `tfidf_ridge`; generation has none. `[]` trains none."""
    num_examples: int = Field(8, ge=0)
    """Example predictions shown in the report."""
    output_schema: dict | None = None
    """A JSON schema (draft 2020-12 unless it says otherwise) that every answer of a generation task must match,
    parsed as JSON: the gate's output-validity check counts the answers that do. null: no schema."""
    reference: bool = True
    """Also compute what healthy traffic looks like for the run (`reference.json`: held-out inputs' novelty,
    prompt lengths, predicted labels and confidence) and fit the confidence calibration on the validation rows;
    `tunesmith monitor` judges live traffic against it, `tunesmith serve` returns calibrated probabilities."""

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, names: list[str] | None) -> list[str] | None:
        known = {name for task in TASK_METRICS.values() for name in task} | set(ALWAYS_REPORTED)
        unknown = [name for name in names or [] if name not in known]
        if unknown:
            raise ValueError(f"{', '.join(map(repr, unknown))}: not a metric; known: {', '.join(sorted(known))}")
        return names

    @field_validator("output_schema")
    @classmethod
    def _valid_schema(cls, schema: dict | None) -> dict | None:
        if schema is not None:
            from jsonschema import SchemaError, validators  # only configs that set a schema pay for the import

            try:
                validators.validator_for(schema).check_schema(schema)
            except SchemaError as exc:
                raise ValueError(f"not a valid JSON schema: {exc.message}") from None
        return schema

    @field_validator("baselines", mode="before")
    @classmethod
    def _known_baselines(cls, value: Any) -> Any:
        # Before pydantic's own check: its error for a union names only the first member's allowed value (`auto`).
        names = value if isinstance(value, list) else [value]
        unknown = [name for name in names if not (isinstance(name, str) and name in BASELINES)]
        if unknown and value != "auto":
            by_task = "; ".join(f"{task}: {', '.join(name for name, (fits, _) in BASELINES.items() if fits == task)}"
                                for task in dict.fromkeys(fits for fits, _ in BASELINES.values()))
            raise ValueError(f"{', '.join(map(repr, unknown))}: not a baseline; allowed: auto, [] or a list of "
                             f"baselines of the task ({by_task})")
        return value

    @model_validator(mode="after")
    def _metrics_of_the_task(self) -> "EvaluateConfig":
        if self.task != "auto":
            self.check_metrics(self.task)
            self.baselines_for(self.task)
        return self

    def check_metrics(self, task: str) -> None:
        """`evaluate.metrics` must be metrics of ``task`` (checked when the task is known: at load for an explicit
        `evaluate.task`, after the data is read for `auto`, before any model is loaded; and by evaluation itself).
        A `ConfigError`, which pydantic lets through its validators unchanged."""
        wrong = [name for name in self.metrics or [] if name not in TASK_METRICS[task] + ALWAYS_REPORTED]
        if wrong:
            raise ConfigError("evaluate.metrics", f"{', '.join(map(repr, wrong))} is not a {task} metric; choose "
                              f"from {', '.join(TASK_METRICS[task] + ALWAYS_REPORTED)}")

    def baselines_for(self, task: str) -> list[str]:
        """The baselines `evaluate.baselines` trains for ``task``; a `ConfigError` when it names one of another task
        (checked when the task is known, as `check_metrics` is)."""
        if self.baselines == "auto":
            return list(AUTO_BASELINES[task])
        fitting = [name for name, (fits, _) in BASELINES.items() if fits == task]
        wrong = [name for name in self.baselines if name not in fitting]
        if wrong:
            allowed = f"auto, [] or a list of {', '.join(fitting)}" if fitting else "auto or [] (it has none)"
            raise ConfigError("evaluate.baselines", f"{', '.join(map(repr, wrong))} is not a {task} baseline; "
                              f"allowed for {task}: {allowed}")
        return list(dict.fromkeys(self.baselines))
