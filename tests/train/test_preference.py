"""Preference training (`method: dpo | orpo | simpo`) through the recipe: the metrics of every step and validation,
gradient accumulation equal to one large batch (the normalizer counts the pairs of the global batch), packed pairs
giving the loss and gradients of padded ones, a resumed run equal to an uninterrupted one, a non-finite loss naming
its step and pairs, placeholder micro-batches adding nothing, and rows of the wrong kind for the method refused."""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import pytest
import torch
from peft import LoraConfig as PeftLoraConfig
from peft import get_peft_model
from safetensors.torch import load_file

import tunesmith.train.preference as preference
from tunesmith.config import save_config, validate_config
from tunesmith.data.pairs import tokenize_pairs
from tunesmith.data.run_inputs import RunInputs
from tunesmith.models import load_tuned_model
from tunesmith.run_dir import RunDir
from tunesmith.train import TrainingError, train
from tunesmith.train.preference import STEP_MEASURES, PairBatchPlan, PreferenceLoss, count_pairs, pair_validation
from tunesmith.train.rows import check_rows_fit_method, training_rows

DATA = {"train": "unused.jsonl", "max_length": 160}


def pref_config(model_dir, method: str = "dpo", preference_settings: dict | None = None, **train_settings):
    settings = {"batch_size": 4, "learning_rate": 1e-2, "eval_every": 2, "save_every": 2, "group_by_length": False,
                "warmup_ratio": 0.0}
    settings.update(train_settings)
    return validate_config({"model": {"name": str(model_dir)}, "data": DATA, "method": method,
                            "lora": {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]},
                            "train": settings, "preference": preference_settings or {}})


def lines_of(run: RunDir) -> list[dict]:
    return [json.loads(line) for line in run.metrics.read_text().splitlines()]


def adapter_weights(folder):
    return load_file(folder / "adapter_model.safetensors")


def test_a_dpo_run_records_its_preference_metrics_and_its_adapter_loads(tiny_model_dir, tmp_path,
                                                                      preference_splits):
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    config = pref_config(tiny_model_dir, max_steps=4)
    save_config(config, run.config_path)
    splits = preference_splits()
    summary = train(config, run, RunInputs(config, splits))
    steps = [line for line in lines_of(run) if "loss" in line]
    validations = [line for line in lines_of(run) if "val_loss" in line]
    assert [line["step"] for line in steps] == [1, 2, 3, 4] and [line["step"] for line in validations] == [2, 4]
    assert all(set(STEP_MEASURES) <= set(line) and line["pairs"] == 4 for line in steps)
    # The new adapter starts at zero: the policy is its reference, every reward 0 and the loss log 2.
    assert steps[0]["loss"] == pytest.approx(math.log(2), abs=1e-6) and steps[0]["reward_margin"] == 0
    assert steps[-1]["loss"] < steps[0]["loss"] and steps[-1]["reward_margin"] > 0
    for line in validations:
        assert 0 <= line["val_preference_accuracy"] <= 1 and math.isfinite(line["val_reward_margin"])
    assert summary["train_rows"] == 12 and summary["validation_rows"] == 4
    assert summary["best_val_metrics"]["val_preference_accuracy"] is not None
    # The reloaded best adapter, its reference the adapter disabled, gives the validation loss training measured.
    model, tokenizer = load_tuned_model(run.root, torch.device("cpu"))
    _, validation_pairs, _ = training_rows(config, splits, tokenizer)
    values = pair_validation(PreferenceLoss.of(model, config), validation_pairs, 4, tokenizer.pad_token_id)
    assert values["val_loss"] == pytest.approx(summary["best_val_loss"], rel=1e-5)


@pytest.mark.parametrize("method", ["orpo", "simpo"])
def test_orpo_and_simpo_train_without_a_reference(method, tiny_model_dir, tmp_path, preference_splits):
    run = RunDir(tmp_path / method)
    config = pref_config(tiny_model_dir, method, max_steps=4)
    train(config, run, RunInputs(config, preference_splits()))
    steps = [line for line in lines_of(run) if "loss" in line]
    assert all(math.isfinite(line["loss"]) and set(STEP_MEASURES) <= set(line) for line in steps)
    assert steps[-1]["loss"] < steps[0]["loss"]


def test_grad_accumulation_and_processes_count_the_pairs_of_the_global_batch(tiny_model_dir, tmp_path,
                                                                            preference_splits):
    big, small = RunDir(tmp_path / "big"), RunDir(tmp_path / "small")
    big_config = pref_config(tiny_model_dir, batch_size=9, max_steps=2, eval_every=10)
    small_config = pref_config(tiny_model_dir, batch_size=3, grad_accumulation=3, max_steps=2, eval_every=10)
    train(big_config, big, RunInputs(big_config, preference_splits(18, 0)))
    train(small_config, small, RunInputs(small_config, preference_splits(18, 0)))
    a, b = adapter_weights(big.best), adapter_weights(small.best)
    assert all(torch.allclose(a[key], b[key], atol=1e-6) for key in a)
    big_steps, small_steps = lines_of(big), lines_of(small)
    assert big_steps[1]["loss"] != pytest.approx(math.log(2), abs=1e-4)  # step 2 runs on moved weights
    for one, other in zip(big_steps, small_steps):
        for key in ("loss", *STEP_MEASURES):
            assert one[key] == pytest.approx(other[key], abs=1e-6), key


def test_resumed_preference_run_equals_an_uninterrupted_one(tiny_model_dir, preference_splits, killed_and_resumed):
    config = pref_config(tiny_model_dir, max_steps=6, save_every=3, eval_every=100, keep_checkpoints=5)
    full, resumed, summary = killed_and_resumed(config, preference_splits)  # killed after the step-3 checkpoint
    reference = adapter_weights(full.checkpoints / "step-000006" / "weights")
    assert summary["steps"] == 6
    got = adapter_weights(resumed.checkpoints / "step-000006" / "weights")
    assert all(torch.allclose(got[key], reference[key], atol=1e-6) for key in reference)
    assert [line["step"] for line in lines_of(resumed)] == [1, 2, 3, 4, 5, 6, 6]
    assert [line["loss"] for line in lines_of(resumed) if "loss" in line] == pytest.approx(
        [line["loss"] for line in lines_of(full) if "loss" in line], abs=1e-6)


def test_a_non_finite_preference_loss_names_the_step_and_its_pairs(tiny_model_dir, tmp_path, monkeypatch,
                                                                  preference_splits):
    real = preference.pair_losses
    monkeypatch.setattr(preference, "pair_losses", lambda *args, **kwargs: real(*args, **kwargs) * float("nan"))
    config = pref_config(tiny_model_dir, max_steps=2)
    with pytest.raises(TrainingError, match=r"^non-finite loss at step 1 on rows pairs\.jsonl:\d+, pairs\.jsonl:\d+"):
        train(config, RunDir(tmp_path / "run"), RunInputs(config, preference_splits()))


def test_a_placeholder_micro_batch_adds_no_loss_and_no_pair(tiny_model, tiny_tokenizer, preference_examples):
    pairs, _ = tokenize_pairs(preference_examples(3), tiny_tokenizer, 160)
    plan = PairBatchPlan(pairs, 3, 0, tiny_tokenizer.pad_token_id)
    batch = plan.epoch(0)[0]
    tensors, empty = plan.collate(batch), plan.placeholder(batch)
    loss = PreferenceLoss(tiny_model, "simpo", 2.0)
    assert plan.count(tensors) == 3 and count_pairs(empty) == 0
    assert float(loss(**tensors)[0].detach()) > 0 and float(loss(**empty)[0].detach()) == 0
    assert plan.real_tokens(batch) == sum(len(p.chosen.input_ids) + len(p.rejected.input_ids) for p in pairs)


def test_a_preference_method_needs_preference_rows_and_back(tiny_model_dir, tmp_path, tiny_splits,
                                                           preference_splits, error_of):
    config = pref_config(tiny_model_dir, max_steps=1)
    assert error_of(lambda: train(config, RunDir(tmp_path / "a"), RunInputs(config, tiny_splits()))) == (
        "config: method: dpo trains on preference pairs (prompt, chosen, rejected), and the data's rows are "
        "classification rows (give data.format: preference rows, or use method: lora for supervised fine-tuning)")
    config.method = "lora"
    assert error_of(lambda: train(config, RunDir(tmp_path / "b"), RunInputs(config, preference_splits()))) == (
        "config: method: the data holds preference pairs (prompt, chosen, rejected), which lora cannot train on "
        "(use method: dpo, orpo or simpo)")


def test_a_preference_row_without_its_rejected_answer_is_named_by_file_and_line(tiny_model_dir, preference_splits,
                                                                                error_of):
    splits = preference_splits()
    splits.train[2] = dataclasses.replace(splits.train[2], rejected=None)
    config = pref_config(tiny_model_dir)
    assert error_of(lambda: check_rows_fit_method(config, splits)) == (
        "pairs.jsonl:3: a preference row without a rejected answer")


@pytest.mark.parametrize(("method", "beta"), [("dpo", 0.1), ("simpo", 2.0)])
def test_packed_pairs_give_the_loss_and_gradients_of_padded_pairs(method, beta, tiny_model, tiny_tokenizer,
                                                                  preference_examples):
    pairs, _ = tokenize_pairs(preference_examples(6), tiny_tokenizer, 160)
    pad = tiny_tokenizer.pad_token_id
    torch.manual_seed(0)
    model = get_peft_model(copy.deepcopy(tiny_model), PeftLoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                                     init_lora_weights=False))
    padded_plan = PairBatchPlan(pairs, 6, 0, pad, group_by_length=False)
    packed_plan = PairBatchPlan(pairs, 6, 0, pad, packing=True, max_length=160)
    padded_batch, packed_batch = padded_plan.epoch(0)[0], packed_plan.epoch(0)[0]
    assert sorted(i for pack in packed_batch for i in pack) == list(range(6)) and len(packed_batch) < 6
    assert packed_plan.rows_per_pack == 1 and padded_plan.rows_per_pack == 2
    loss = PreferenceLoss(model, method, beta, sft_weight=0.5)

    def run(plan, batch):
        model.zero_grad()
        tensors = plan.collate(batch)
        total, measures = loss(**tensors)
        total.backward()
        gradients = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad}
        return float(total.detach()), measures, gradients, plan.count(tensors)

    padded_loss, padded_measures, padded_gradients, padded_pairs = run(padded_plan, padded_batch)
    packed_loss, packed_measures, packed_gradients, packed_pairs = run(packed_plan, packed_batch)
    assert padded_pairs == packed_pairs == 6
    assert packed_plan.real_tokens(packed_batch) == padded_plan.real_tokens(padded_batch)
    assert packed_loss == pytest.approx(padded_loss, abs=1e-5) and padded_loss != pytest.approx(6 * math.log(2))
    assert torch.allclose(packed_measures, padded_measures, atol=1e-5)
    for name, gradient in padded_gradients.items():
        assert torch.allclose(packed_gradients[name], gradient, atol=1e-5), name


def test_a_packed_dpo_run_puts_several_pairs_in_a_pack(tiny_model_dir, tmp_path, preference_splits):
    run = RunDir(tmp_path / "packed")
    config = pref_config(tiny_model_dir, max_steps=3, batch_size=1, packing=True)
    summary = train(config, run, RunInputs(config, preference_splits()))
    steps = [line for line in lines_of(run) if "loss" in line]
    # batch_size counts packs: one pack a step, holding whole pairs (two sequences each, 2 x 160 tokens at most):
    # fewer packs than the 12 pairs make an epoch.
    packs_per_epoch = round(1 / steps[0]["epoch"])
    assert packs_per_epoch < 12 and sum(line["pairs"] for line in steps) > len(steps) and summary["steps"] == 3
    assert steps[0]["loss"] == pytest.approx(math.log(2), abs=1e-6)  # a new adapter starts as its reference
    assert all(set(STEP_MEASURES) <= set(line) for line in steps)
