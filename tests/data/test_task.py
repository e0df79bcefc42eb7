"""The task a run is scored on, resolved once from its config and splits: its name (`evaluate.task` or the row
format's), its label set (the data's, else `data.label_names`) and the metrics evaluation reports."""

from __future__ import annotations

import pytest

from tunesmith.config import validate_config
from tunesmith.config.vocabulary import TASK_METRICS
from tunesmith.data.example import Splits
from tunesmith.data.task import Task
from tunesmith.errors import ConfigError


def splits(fmt: str, labels: list[str] | None = None) -> Splits:
    return Splits(train=[], validation=[], test=[], format=fmt, labels=labels)


def config(evaluate: dict | None = None, **data) -> object:
    return validate_config({"data": {"train": "t.jsonl", **data}, "evaluate": evaluate or {}})


@pytest.mark.parametrize(
    ("task", "fmt", "expected"),
    [
        ("auto", "classification", "classification"), ("auto", "regression", "regression"),
        ("auto", "alpaca", "generation"), ("auto", "messages", "generation"), ("auto", "text", "generation"),
        ("generation", "classification", "generation"), ("regression", "alpaca", "regression"),
    ],
)
def test_the_task_is_evaluate_task_or_the_row_formats(task, fmt, expected):
    assert Task.resolve(config({"task": task}), splits(fmt, ["a", "b"])).name == expected


def test_labels_come_from_the_data_or_label_names():
    named = config(label_names=["neg", "pos"])
    assert Task.resolve(named, splits("classification", ["a", "b"])).labels == ["a", "b"]
    assert Task.resolve(config({"task": "classification"}, label_names=["neg", "pos"]), splits("alpaca")).labels == [
        "neg", "pos"]
    assert Task.resolve(named, splits("alpaca")).labels is None  # generation has no label set
    with pytest.raises(ConfigError, match="evaluate.task: classification needs labelled rows"):
        Task.resolve(config({"task": "classification"}), splits("alpaca"))


def test_the_metrics_are_evaluate_metrics_or_every_metric_of_the_task():
    assert Task.resolve(config(), splits("regression")).metrics == TASK_METRICS["regression"]
    assert Task.resolve(config({"metrics": ["f1", "loss"]}), splits("classification", ["a", "b"])).metrics == (
        "f1", "loss")
    with pytest.raises(ConfigError, match="evaluate.metrics: 'bleu' is not a classification metric"):
        Task.resolve(config({"metrics": ["bleu"]}), splits("classification", ["a", "b"]))


def test_of_names_a_task_directly():
    assert Task.of("classification", ["ham", "spam"]) == Task("classification", ["ham", "spam"],
                                                             TASK_METRICS["classification"])
    assert Task.of("generation", metrics=["bleu"]).metrics == ("bleu",)
