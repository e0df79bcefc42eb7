"""The `gate:` section: what a run must show before it may replace the model in service (`tunesmith gate`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator

from tunesmith.config.section import ConfigSection, RelativeToConfig

Requirement = Literal["better", "not_worse", "off"]
"""How a comparison check judges the paired difference of the gate metric (tuned − other, signed so that higher is
better): `better` passes when the whole confidence interval lies above 0, `not_worse` when its lower end lies
above ``-gate.margin``, `off` measures nothing."""


class GateConfig(ConfigSection):
    metric: str | None = None
    """The metric the comparisons judge; null: the task's first metric (accuracy, mse, bleu)."""
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    """Level of every confidence interval (paired bootstrap over the test rows)."""
    resamples: int = Field(2000, ge=100, le=100_000)
    """Bootstrap resamples per interval."""
    seed: int = 0
    """Seed of the bootstrap: the same seed gives the same intervals."""
    against_base: Requirement = "better"
    """The tuned model against its base model on the test rows."""
    against_baseline: Requirement = "not_worse"
    """The tuned model against the best classic baseline (`evaluate.baselines`) on the test rows."""
    against_previous: Requirement = "not_worse"
    """The tuned model against the run in service (`tunesmith gate RUN --against OLD_RUN`)."""
    against_init_from: Requirement = "not_worse"
    """A preference run with `model.init_from`: the tuned model against that run's model (its base) on that run's
    test rows and task; a preference step need not improve the task, but must keep it. Such a run skips
    `against_base`."""
    preference_accuracy: Requirement = "better"
    """A preference run (`method: dpo | orpo | simpo`): its preference accuracy on the held-out pairs against its
    reference model's own ranking of the same pairs (log p(chosen) > log p(rejected)), paired pair by pair."""
    margin: float = Field(0.01, ge=0.0)
    """Non-inferiority margin of `not_worse` (and of the task a preference run must keep), stated on the 0–1 scale
    of a score: the interval's lower end must lie above ``-margin`` times the metric's scale, 1 for the scores
    reported on 0–1 (accuracy, f1, rouge_l, exact_match; 0.01 = 1 point of accuracy), 100 for BLEU, reported in
    points (0.01 = 1 BLEU point). The errors (mse, mae) have no fixed scale: for them it is in their own units."""
    max_ece: float | None = Field(0.05, gt=0.0, le=1.0)
    """Highest expected calibration error (after temperature scaling) of a classification run; null: measured
    only."""
    min_valid_output: float | None = Field(0.99, ge=0.0, le=1.0)
    """Lowest share of the tuned model's test answers that are valid: one of the labels (classification), a
    number (regression), a JSON document matching `evaluate.output_schema` when set (generation); null: measured
    only."""
    general_rows: int = Field(50, ge=0)
    """General instruction prompts (shipped with tunesmith; 249 in all) on which the tuned model is compared with
    its base; 0 skips the general-ability check. 50 gives `kept` an interval about ±0.02 wide, in minutes on a CPU
    (BENCHMARKS.md, "The release gate"); more narrows it, at a cost linear in rows."""
    general_max_new_tokens: int = Field(32, ge=1)
    """Length of the base model's greedy answers that the tuned model's agreement is measured on."""
    min_general_kept: float | None = Field(0.7, gt=0.0, le=1.0)
    """Lowest share of the base's general ability the tuned model must keep: the ratio of the base's to the
    tuned model's perplexity on the reference answers of the general prompts; null: measured only. The demo's
    healthy LoRA run keeps about 0.8 (BENCHMARKS.md, "The release gate"); an adapter that learned one answer keeps
    under 0.5."""
    min_general_agreement: float | None = Field(None, ge=0.0, le=1.0)
    """Lowest share of the base's greedy answer tokens that the tuned model predicts too; null: measured only."""
    lm_eval_tasks: list[str] = Field(default_factory=list)
    """lm-evaluation-harness tasks run on the merged export and on the base (needs the `lm-eval` extra and the
    tasks' data in the local cache, or tasks of `gate.lm_eval_include_path`)."""
    lm_eval_include_path: Annotated[Path | None, RelativeToConfig()] = None
    """A folder of lm-evaluation-harness task YAML files (tasks on local data)."""
    lm_eval_limit: int | None = Field(None, ge=1)
    """Rows per lm-evaluation-harness task; null: all."""
    min_lm_eval_kept: float | None = Field(0.9, gt=0.0, le=1.0)
    """Lowest ratio of the tuned model's to the base's score on each lm-evaluation-harness task."""
    latency_rows: int = Field(20, ge=0)
    """Test rows answered one at a time to measure the tuned model's latency; 0 skips it."""
    max_p95_latency_s: float | None = Field(None, gt=0.0)
    """Highest 95th-percentile latency of one answer, in seconds; null: measured only."""
    max_export_mb: float | None = Field(None, gt=0.0)
    """Largest size of the run's export (adapter, or merged model for a full fine-tune), in MiB; null: measured
    only."""

    @field_validator("against_base", "against_baseline", "against_previous", "against_init_from", "preference_accuracy",
                     mode="before")
    @classmethod
    def _off_read_as_false(cls, value):
        # YAML 1.1 reads a bare `off` (in a file or `--set gate.against_base=off`) as false.
        return "off" if value is False else value

    @field_validator("lm_eval_tasks")
    @classmethod
    def _named_tasks(cls, names: list[str]) -> list[str]:
        if any(not name.strip() for name in names):
            raise ValueError("a task name is empty")
        return names
