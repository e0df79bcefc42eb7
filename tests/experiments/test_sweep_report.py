"""What the sweep report says about the best trial: config values, not the sampler's internal ones."""

from __future__ import annotations

from types import SimpleNamespace

import optuna

from tunesmith.config import validate_config
from tunesmith.config.search_space import parse_space
from tunesmith.experiments.sweep_report import best_settings


def test_the_best_alpha_is_shown_as_the_config_value_not_its_multiple_of_r():
    config = validate_config({"data": {"train": "t.jsonl"}, "lora": {"r": 8}, "sweep": {"params": {
        "train.learning_rate": [1e-4, 2e-4], "lora.alpha": {"multiple_of_r": [1, 2]}}}})
    sweep = SimpleNamespace(config=config, params=parse_space(config))
    best = optuna.trial.create_trial(
        params={"train.learning_rate": 2e-4, "lora.alpha": 2}, value=0.5, distributions={
            "train.learning_rate": optuna.distributions.CategoricalDistribution([1e-4, 2e-4]),
            "lora.alpha": optuna.distributions.CategoricalDistribution([1, 2])})
    assert best_settings(sweep, best) == {"train.learning_rate": 2e-4, "lora.alpha": 16.0}  # r 8 x 2
    assert [param.label for param in sweep.params] == ["train.learning_rate", "lora.alpha / r"]
