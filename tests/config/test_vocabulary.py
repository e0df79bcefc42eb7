"""Each vocabulary is one Literal: its descriptions, the code that implements it and the config agree."""

from __future__ import annotations

import re
from pathlib import Path
from typing import get_args

import pytest

from tunesmith.config import validate_config
from tunesmith.config.schema import RunConfig
from tunesmith.config.section import section_type
from tunesmith.config.vocabulary import (
    ADAPTER_METHODS,
    ALWAYS_REPORTED,
    AUTO_BASELINES,
    BASELINES,
    DEFAULT_GGUF_QUANT,
    EXPORT_FORMATS,
    FINDING_KINDS,
    LABELED_FORMATS,
    METHODS,
    MINIMIZED,
    PERCENT_POINT_METRICS,
    ROW_FORMATS,
    TASK_METRICS,
    WHOLE_DATA_FINDINGS,
    Baseline,
    ExportFormat,
    FindingKind,
    GgufQuant,
    Method,
    RowFormat,
    TaskName,
    TemplateName,
)
from tunesmith.errors import ConfigError

DATA_PACKAGE = Path(__file__).resolve().parents[2] / "src" / "tunesmith" / "data"


def test_descriptions_cover_exactly_the_names():
    assert list(ROW_FORMATS) == list(get_args(RowFormat))
    assert list(FINDING_KINDS) == list(get_args(FindingKind))
    assert set(WHOLE_DATA_FINDINGS) <= set(FINDING_KINDS)
    assert list(EXPORT_FORMATS) == list(get_args(ExportFormat))
    assert DEFAULT_GGUF_QUANT in get_args(GgufQuant)


def test_every_finding_kind_is_reported_by_the_data_check():
    source = "".join(path.read_text(encoding="utf-8") for path in DATA_PACKAGE.rglob("*.py"))
    reported = set(re.findall(r'\b(?:finding|Finding)\(\s*"(\w+)"', source)) | {"unreadable"}
    assert reported == set(FINDING_KINDS)


def test_findings_about_the_whole_data_cannot_be_dropped():
    with pytest.raises(ConfigError, match=r"data\.check\.drop: label_imbalance: findings about the data as a whole"):
        validate_config({"data": {"train": "t.jsonl", "check": {"drop": ["duplicate", "label_imbalance"]}}})


def test_the_tables_of_each_task_cover_exactly_the_tasks():
    tasks = list(get_args(TaskName))
    assert list(TASK_METRICS) == tasks and list(AUTO_BASELINES) == tasks
    assert list(BASELINES) == list(get_args(Baseline)) and {fits for fits, _ in BASELINES.values()} <= set(tasks)
    assert all(BASELINES[name][0] == task for task, names in AUTO_BASELINES.items() for name in names)
    assert set(LABELED_FORMATS) <= set(get_args(RowFormat)) and set(LABELED_FORMATS) <= set(tasks)
    every_metric = {name for names in TASK_METRICS.values() for name in names} | set(ALWAYS_REPORTED)
    assert set(MINIMIZED) <= every_metric


def test_the_scores_reported_in_percent_points_are_the_ones_a_perfect_answer_scores_100():
    """`metric_scale` (which `gate.margin` is multiplied by) must follow the scale the metrics are computed on."""
    from tunesmith.predict.metrics import classification_metrics, generation_metrics

    perfect = {**classification_metrics(["a", "b"], ["a", "b"], ["a", "b"]),
               **generation_metrics(["the cat sat on the mat today"] * 2, ["the cat sat on the mat today"] * 2)}
    scores = {name: value for name, value in perfect.items()
              if name in {metric for names in TASK_METRICS.values() for metric in names}}
    assert set(scores) == set(TASK_METRICS["classification"]) | set(TASK_METRICS["generation"])
    assert {name for name, value in scores.items() if value == pytest.approx(100)} == set(PERCENT_POINT_METRICS)
    assert all(value == pytest.approx(1) for name, value in scores.items() if name not in PERCENT_POINT_METRICS)


def test_the_method_tables_cover_exactly_the_methods():
    assert list(METHODS) == list(get_args(Method)) and set(ADAPTER_METHODS) < set(METHODS)


def _doc(key: str) -> str:
    *sections, name = key.split(".")
    model = RunConfig
    for section in sections:
        model = section_type(model.model_fields[section].annotation)
    return " ".join(model.model_fields[name].description.split())


@pytest.mark.parametrize("key", ["evaluate.metrics", "train.val_metrics", "sweep.metric"])
def test_settings_that_name_metrics_list_every_metric_of_every_task(key):
    """Their type is a string, so only the docstring tells the user the names (and it must not go stale)."""
    missing = [name for names in TASK_METRICS.values() for name in names if name not in _doc(key)]
    assert missing == []


def test_the_chat_template_setting_lists_every_built_in_template():
    assert [name for name in get_args(TemplateName) if f"`{name}`" not in _doc("model.chat_template")] == []
