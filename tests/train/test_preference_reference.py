"""The preference losses against TRL's (a dev dependency): tunesmith's DPO loss equals TRL's `DPOTrainer` on the same
batch and weights within 1e-5, with the same token ids (TRL tokenizes the rows itself; the test asserts they are
`TokenizedPair.trl_ids`); SimPO equals TRL's experimental `CPOTrainer(loss_type="simpo", cpo_alpha=0)`; ORPO's
odds-ratio term equals TRL's experimental `ORPOTrainer`'s, beside the chosen answer's mean negative
log-likelihood over the answer tokens (TRL's ORPO takes that term over the prompt tokens too; tunesmith keeps
every loss on the answer tokens). `preference.sft_weight` α equals TRL's DPO with `loss_type=["sigmoid", "sft"]`,
`loss_weights=[1, α]` (on chosen answers of equal lengths, where TRL's batch token mean is each pair's mean).

The weights: a tiny random Llama with a LoRA adapter whose B matrices are random, so the policy differs from the
reference (the adapter disabled; TRL is handed the model without the adapter as its `ref_model`) and the DPO loss is
not its trivial log 2 (with a new, zero adapter both are log 2 at step 1); fp32, no dropout."""

from __future__ import annotations

import copy
import dataclasses
import math
import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tunesmith.config.schema import LoraConfig
from tunesmith.data.pairs import tokenize_pairs
from tunesmith.data.tokenize import IGNORE_INDEX
from tunesmith.models import add_lora
from tunesmith.predict.preference import pair_batch
from tunesmith.train.preference import PreferenceLoss

# ChatML without a newline after the last turn: TRL keeps the tokens after an answer's end-of-turn token, tunesmith
# drops them (they carry no loss), so with this template both tokenize every row alike.
TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' }}"
    "{% if not loop.last %}{{ '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '\n<|im_start|>assistant\n' }}{% endif %}"
)
PAIRS = 5


@pytest.fixture(autouse=True)
def leaves_no_trainer_state():
    """TRL's trainers set accelerate's process-wide state and environment variables: put both back, so the tests
    after these train as they would alone."""
    environment = dict(os.environ)
    yield
    from accelerate.state import AcceleratorState

    AcceleratorState._reset_state(reset_partial_state=True)
    os.environ.clear()
    os.environ.update(environment)


@pytest.fixture()
def case(tiny_model_dir, preference_examples):
    return build_case(tiny_model_dir, preference_examples(PAIRS))


@pytest.fixture()
def equal_chosen_case(tiny_model_dir, preference_examples):
    """A case whose chosen answers all have the same tokens (so a batch's token mean is each pair's mean)."""
    examples = [dataclasses.replace(example, messages=(*example.messages[:-1],
                                                       {"role": "assistant", "content": "Paris, in France."}))
                for example in preference_examples(PAIRS)]
    return build_case(tiny_model_dir, examples)


def build_case(tiny_model_dir, examples):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = TEMPLATE
    pairs, _ = tokenize_pairs(examples, tokenizer, max_length=256)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model = add_lora(model, LoraConfig(r=4, alpha=8, dropout=0.0, target_modules=["q_proj", "v_proj", "down_proj"]))
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    model.train()
    rows = [{"prompt": list(example.messages[:-1]), "chosen": [example.messages[-1]], "rejected": [example.rejected]}
            for example in examples]
    return tokenizer, pairs, model, rows


def ours(model, pairs, method, beta, **settings) -> float:
    """tunesmith's loss of the batch: the summed loss over its pairs, as the recipe normalizes it."""
    loss_sum, _ = PreferenceLoss(model, method, beta, **settings)(**pair_batch(pairs, pad_token_id=0))
    return float(loss_sum.detach()) / len(pairs)


def test_the_dpo_loss_equals_trl_dpo_trainer_on_the_same_batch_and_weights(case, tiny_model_dir, tmp_path):
    tokenizer, pairs, model, rows = case
    expected = ours(model, pairs, "dpo", 0.1)
    trl_loss = trl_dpo_loss(case, tiny_model_dir, tmp_path)
    assert abs(expected - math.log(2)) > 1e-3  # the policy is not the reference: a loss that can differ
    assert abs(expected - trl_loss) < 1e-5


def test_the_sft_weight_adds_trl_dpo_trainers_sft_loss(equal_chosen_case, tiny_model_dir, tmp_path):
    tokenizer, pairs, model, rows = equal_chosen_case
    assert len({len(pair.chosen.input_ids) - pair.prompt_length for pair in pairs}) == 1
    expected = ours(model, pairs, "dpo", 0.1, sft_weight=0.7)
    plain = ours(model, pairs, "dpo", 0.1)
    trl_loss = trl_dpo_loss(equal_chosen_case, tiny_model_dir, tmp_path, loss_type=["sigmoid", "sft"],
                            loss_weights=[1.0, 0.7])
    assert expected - plain > 0.1  # the imitation term is there
    assert abs(expected - trl_loss) < 1e-5


def trl_dpo_loss(case, tiny_model_dir, tmp_path, **settings) -> float:
    """TRL's DPOTrainer loss of the case's batch, after asserting it tokenized the rows as tunesmith does."""
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    tokenizer, pairs, model, rows = case
    args = DPOConfig(output_dir=str(tmp_path), beta=0.1, per_device_train_batch_size=PAIRS, report_to=[],
                     use_cpu=True, bf16=False, fp16=False, max_length=None, dataset_num_proc=None, **settings)
    # TRL's reference for a PEFT model it is handed is a frozen copy of that adapter (it continues an adapter);
    # tunesmith's is the model without it (the new adapter disabled): so TRL is given that model as `ref_model`.
    reference = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    trainer = DPOTrainer(model=copy.deepcopy(model), ref_model=reference, args=args,
                         train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
    tokenized = [trainer.train_dataset[i] for i in range(PAIRS)]
    assert [{key: row[key] for key in ("prompt_ids", "chosen_ids", "rejected_ids")} for row in tokenized] == [
        pair.trl_ids() for pair in pairs]
    batch = trainer.data_collator([{key: row[key] for key in ("prompt_ids", "chosen_ids", "rejected_ids")}
                                   for row in tokenized])
    trl_loss = trainer._compute_loss(trainer.model, batch, return_outputs=False)
    return float(trl_loss[0] if isinstance(trl_loss, tuple) else trl_loss)


def trl_pair_batch(pairs, pad_token_id: int) -> dict[str, torch.Tensor]:
    """The pairs as TRL's experimental trainers' tokenized batch (``chosen_input_ids``, ``chosen_labels``, ...),
    right-padded per side."""
    batch = {}
    for side in ("chosen", "rejected"):
        rows = [getattr(pair, side) for pair in pairs]
        width = max(len(row.input_ids) for row in rows)
        batch[f"{side}_input_ids"] = torch.tensor([row.input_ids + [pad_token_id] * (width - len(row.input_ids))
                                                   for row in rows])
        batch[f"{side}_attention_mask"] = torch.tensor([[1] * len(row.input_ids) + [0] * (width - len(row.input_ids))
                                                        for row in rows])
        batch[f"{side}_labels"] = torch.tensor([row.labels + [IGNORE_INDEX] * (width - len(row.labels))
                                                for row in rows])
    return batch


def string_rows(rows):
    return [{"prompt": row["prompt"][0]["content"], "chosen": row["chosen"][0]["content"],
             "rejected": row["rejected"][0]["content"]} for row in rows]


def test_the_simpo_loss_equals_trl_cpo_trainer_with_the_simpo_loss(case, tmp_path):
    from datasets import Dataset
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    tokenizer, pairs, model, rows = case
    expected = ours(model, pairs, "simpo", 2.0, simpo_gamma=0.7)
    args = CPOConfig(output_dir=str(tmp_path), loss_type="simpo", beta=2.0, simpo_gamma=0.7, cpo_alpha=0.0,
                     report_to=[], use_cpu=True, bf16=False, fp16=False, max_length=256)
    trainer = CPOTrainer(model=copy.deepcopy(model), args=args, train_dataset=Dataset.from_list(string_rows(rows)),
                         processing_class=tokenizer)
    trl_loss, _ = trainer.get_batch_loss_metrics(trainer.model, trl_pair_batch(pairs, tokenizer.pad_token_id))
    assert abs(expected - float(trl_loss)) < 1e-5


def test_the_orpo_loss_is_trl_orpo_trainers_odds_ratio_term_beside_the_answers_nll(case, tmp_path):
    from datasets import Dataset
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    tokenizer, pairs, model, rows = case
    expected = ours(model, pairs, "orpo", 0.1)
    args = ORPOConfig(output_dir=str(tmp_path), beta=0.1, report_to=[], use_cpu=True, bf16=False, fp16=False,
                      max_length=256)
    trainer = ORPOTrainer(model=copy.deepcopy(model), args=args, train_dataset=Dataset.from_list(string_rows(rows)),
                          processing_class=tokenizer)
    chosen_logps, rejected_logps, *_ = trainer.concatenated_forward(trainer.model,
                                                                    trl_pair_batch(pairs, tokenizer.pad_token_id))
    odds_ratio_terms = trainer.odds_ratio_loss(chosen_logps, rejected_logps)[0]
    assert abs(expected - float((-chosen_logps - odds_ratio_terms).mean())) < 1e-5


def test_label_smoothing_mixes_in_the_opposite_preference(case):
    _, pairs, model, _ = case
    plain = ours(model, pairs, "simpo", 2.0, simpo_gamma=0.0)
    smoothed = ours(model, pairs, "simpo", 2.0, simpo_gamma=0.0, label_smoothing=0.25)
    swapped = [type(pair)(pair.rejected, pair.chosen, pair.location) for pair in pairs]
    flipped = ours(model, swapped, "simpo", 2.0, simpo_gamma=0.0)
    assert abs(plain - flipped) > 1e-3
    assert abs(smoothed - (0.75 * plain + 0.25 * flipped)) < 1e-6
