"""The plan of a tiny run: its steps are the steps the run takes, the probe measures, --no-probe loads no model."""

from __future__ import annotations

import pytest

from tunesmith.config import load_config
from tunesmith.data import RunInputs
from tunesmith.errors import ConfigError
from tunesmith.json_files import read_json
from tunesmith.pipeline import create_run, run_pipeline
from tunesmith.plan import make_plan, render_plan, summary_line
from tunesmith.plan.estimates import THROUGHPUT


def no_model_loads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained", refuse)


@pytest.mark.parametrize("train", [{"max_steps": 3}, {"max_steps": None, "epochs": 1, "batch_size": 3},
                                   {"max_steps": None, "epochs": 1, "packing": True, "grad_accumulation": 2}])
def test_the_plans_steps_are_the_steps_the_run_takes(plan_project, train):
    config = load_config(plan_project(**train))
    plan = make_plan(config, RunInputs(config), probe=False)
    run = run_pipeline(config, create_run(config), until="train")
    summary = read_json(run.train_summary)
    assert plan.counts.steps == summary["steps"] == summary["planned_steps"]
    assert plan.counts.train_rows == summary["train_rows"]
    epochs = plan.counts.steps / plan.counts.steps_per_epoch
    assert summary["train_tokens"] == pytest.approx(plan.counts.tokens_per_epoch * epochs, rel=0.5)


def test_no_probe_loads_no_model_and_says_the_table_it_used(plan_project, monkeypatch):
    config = load_config(plan_project())
    no_model_loads(monkeypatch)
    plan = make_plan(config, RunInputs(config), probe=False, price_per_hour=3.0)
    assert plan.time.how == "table" and plan.time.detail["source"] == THROUGHPUT["cpu"][1]
    assert plan.memory.how == "computed" and plan.memory.value > plan.memory.detail["parts"]["weights"] > 0
    assert plan.cost == pytest.approx(plan.time.value / 3600 * 3.0)
    assert plan.disk["checkpoints"].value > 0 and "adapter" in plan.disk
    line = summary_line(plan)
    assert "\n" not in line and "(table)" in line and "3/h" in line


def test_the_probe_measures_a_positive_time_and_at_least_the_weights(plan_project):
    config = load_config(plan_project())
    plan = make_plan(config, RunInputs(config), probe=True)
    assert plan.time.how == "measured" and plan.time.value > 0
    assert len(plan.time.detail["step_seconds"]) == 3
    assert plan.memory.how == "measured" and plan.memory.value >= plan.shape.params * plan.shape.weight_bytes
    assert "measured: 3 steps after a warm-up" in render_plan(plan)


def test_full_fine_tuning_trains_and_checkpoints_every_weight(plan_project):
    config = load_config(plan_project()).model_copy(update={"method": "full"})
    plan = make_plan(config, RunInputs(config), probe=False)
    assert plan.shape.trainable == plan.shape.params
    assert "adapter" not in plan.disk and plan.disk["checkpoints"].detail["kind"] == "full weights"


def test_a_negative_price_is_a_config_error(plan_project):
    config = load_config(plan_project())
    with pytest.raises(ConfigError, match="--price-per-hour"):
        make_plan(config, RunInputs(config), probe=False, price_per_hour=-1.0)
