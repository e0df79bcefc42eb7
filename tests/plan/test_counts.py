"""The counts of a preference run's plan: pairs as the rows, two sequences a pair, the reference forward of dpo in
the work a token costs; and the plan's steps are the steps the run takes."""

from __future__ import annotations

import pytest

from tunesmith.config import validate_config
from tunesmith.data.example import Example, Splits
from tunesmith.data.run_inputs import RunInputs
from tunesmith.plan import make_plan, render_plan
from tunesmith.plan.estimates import flops_per_token
from tunesmith.run_dir import RunDir
from tunesmith.train import train


def pairs(n: int, offset: int = 0) -> list[Example]:
    return [Example(messages=({"role": "user", "content": f"Write a short poem about the sea. {'x' * (i % 4)}"},
                              {"role": "assistant", "content": "The waves roll in." * (1 + i % 2)}),
                    location=f"pairs.jsonl:{i + 1}", rejected={"role": "assistant", "content": "no"})
            for i in range(offset, offset + n)]


@pytest.fixture()
def preference_run(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))

    def make(method: str, **train_settings):
        config = validate_config({
            "model": {"name": str(tiny_model_dir)}, "data": {"train": "unused.jsonl", "max_length": 128},
            "method": method, "lora": {"r": 2, "alpha": 4, "target_modules": ["q_proj", "v_proj"]},
            "train": {"epochs": 1, "batch_size": 3, "eval_every": 2, "warmup_ratio": 0.0, **train_settings}})
        splits = Splits(train=pairs(10), validation=pairs(3, 50), test=[], format="preference")
        return config, RunInputs(config, splits)

    return make


@pytest.mark.parametrize("probe", [False, True], ids=["table", "probe"])
def test_a_dpo_plan_counts_pairs_and_their_two_sequences(preference_run, tmp_path, probe):
    config, inputs = preference_run("dpo")
    plan = make_plan(config, inputs, probe=probe)
    counts = plan.counts
    assert counts.train_rows == 10 and counts.steps_per_epoch == 4  # 10 pairs, 3 a step
    assert counts.longest_micro_batch[0] == 6  # 3 pairs are 6 rows
    assert plan.time.value > 0 and "dpo" in render_plan(plan)
    summary = train(config, RunDir(tmp_path / "run"), inputs)
    assert summary["steps"] == counts.steps and summary["train_tokens"] == counts.tokens_per_epoch


def test_a_packed_dpo_plan_counts_packs_of_whole_pairs(preference_run, tmp_path):
    config, inputs = preference_run("dpo", packing=True, batch_size=1)
    counts = make_plan(config, inputs, probe=False).counts
    # A pack is one row of whole pairs (both sequences), up to 2 x 128 tokens: fewer packs than pairs.
    assert counts.longest_micro_batch[0] == 1 and 128 < counts.longest_micro_batch[1] <= 256
    assert counts.steps_per_epoch < 10
    summary = train(config, RunDir(tmp_path / "run"), inputs)
    assert summary["steps"] == counts.steps and summary["train_tokens"] == counts.tokens_per_epoch


def test_the_reference_forward_of_dpo_costs_two_flop_a_parameter(preference_run):
    config, inputs = preference_run("dpo")
    shape = make_plan(config, inputs, probe=False).shape
    assert flops_per_token(shape, "dpo") == flops_per_token(shape, "simpo") + 2 * shape.params
