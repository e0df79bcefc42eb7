"""The sweep's search space: every way to write it, and every way to get it wrong (a ConfigError naming
sweep.params.<key>)."""

from __future__ import annotations

import pytest

from tunesmith.config import validate_config
from tunesmith.config.search_space import apply_params, metric_direction, parse_space, resolve


def config_with(params: dict, **sweep):
    return validate_config({"data": {"train": "train.jsonl"}, "sweep": {"params": params, **sweep}})


def test_every_kind_of_distribution_is_read():
    params = parse_space(config_with({
        "train.learning_rate": {"log_uniform": [1e-5, 1e-3]}, "lora.r": [8, 16],
        "lora.alpha": {"multiple_of_r": [1, 2]},
        "train.max_steps": {"int": [50, 300], "step": 50}, "lora.dropout": {"uniform": [0.0, 0.2]},
        "train.scheduler": {"choices": ["cosine", "linear"]},
    }))
    by_key = {param.key: param for param in params}
    assert by_key["train.learning_rate"].log and by_key["train.learning_rate"].kind == "float"
    assert by_key["train.max_steps"].grid() == [50, 100, 150, 200, 250, 300]
    assert by_key["lora.r"].grid() == [8, 16]
    assert resolve({"lora.r": 16, "lora.alpha": 2}, params, {"lora": {"r": 8}})["lora.alpha"] == 32.0


def test_directions_follow_the_metric():
    assert metric_direction("val_loss", None) == "minimize"
    assert metric_direction("accuracy", None) == "maximize"
    assert metric_direction("mse", None) == "minimize"
    assert metric_direction("f1", "minimize") == "minimize"


@pytest.mark.parametrize("params, key, words", [
    ({"train.lerning_rate": [1e-4]}, "sweep.params.train.lerning_rate", "did you mean 'train.learning_rate'"),
    ({"lora": [1, 2]}, "sweep.params.lora", "is a section"),
    ({"lora.r": []}, "sweep.params.lora.r", "empty"),
    ({"lora.r": {"uniform": [4.0, 16.0]}}, "sweep.params.lora.r", "whole numbers"),
    ({"lora.r": [0, 8]}, "sweep.params.lora.r", "0 is not a valid lora.r"),
    ({"train.learning_rate": {"log_uniform": [0, 1e-3]}}, "sweep.params.train.learning_rate", "positive"),
    ({"train.learning_rate": {"uniform": [1e-3, 1e-4]}}, "sweep.params.train.learning_rate", "below"),
    ({"train.scheduler": ["cosine", "sideways"]}, "sweep.params.train.scheduler", "'sideways' is not a valid"),
    ({"train.learning_rate": {"uniform": [1e-4, 1e-3], "choices": [1]}}, "sweep.params.train.learning_rate",
     "exactly one"),
    ({"train.batch_size": {"multiple_of_r": [1]}}, "sweep.params.train.batch_size", "lora.alpha"),
    ({"output.dir": ["a", "b"]}, "sweep.params.output.dir", "cannot vary"),
])
def test_a_bad_space_names_the_key(params, key, words, error_of):
    message = error_of(lambda: parse_space(config_with(params)))
    assert f"config: {key}:" in message and words in message


def test_grid_needs_a_finite_space(error_of):
    parse_space(config_with({"lora.r": [4, 8], "train.max_steps": {"int": [1, 3]}}, sampler="grid"))
    message = error_of(lambda: parse_space(config_with({"train.learning_rate": {"uniform": [1e-4, 1e-3]}},
                                                       sampler="grid")))
    assert "sweep.sampler" in message and "train.learning_rate" in message


def test_an_unknown_metric_is_a_config_error(error_of):
    assert "sweep.metric" in error_of(lambda: parse_space(config_with({"lora.r": [4]}, metric="accurracy")))


def test_apply_params_sets_nested_keys_without_touching_the_original():
    raw = {"train": {"learning_rate": 1e-4}, "lora": {"r": 8}}
    applied = apply_params(raw, {"train.learning_rate": 1e-3, "lora.r": 16})
    assert applied == {"train": {"learning_rate": 1e-3}, "lora": {"r": 16}}
    assert raw == {"train": {"learning_rate": 1e-4}, "lora": {"r": 8}}
