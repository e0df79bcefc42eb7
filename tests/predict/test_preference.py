"""`tunesmith.predict.preference`: sequence log-probabilities over the answers equal those from the full logits,
and the reference policy is the model with its adapter disabled."""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model

from tunesmith.data.example import Example
from tunesmith.data.pairs import tokenize_pairs
from tunesmith.predict.preference import (
    SEQUENCE_IDS,
    packed_pair_batch,
    pair_batch,
    pair_logps,
    sequence_logps,
    supervised_tokens,
)


def pairs(tokenizer, n=3):
    rows = [Example(messages=({"role": "user", "content": f"Question {i}?"},
                              {"role": "assistant", "content": "Yes." * (i + 1)}),
                    location=f"p.jsonl:{i + 1}", rejected={"role": "assistant", "content": "No, never" * (i + 1)})
            for i in range(n)]
    return tokenize_pairs(rows, tokenizer, max_length=256)[0]


def full_logits_logps(model, batch):
    logps = torch.log_softmax(model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                              .float(), dim=-1)
    targets = batch["labels"][:, 1:]
    keep = targets != -100
    token = logps[:, :-1].gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (token * keep).sum(dim=1)


def test_sequence_logps_equal_the_full_logits_ones(tiny_model, tiny_tokenizer):
    batch = pair_batch(pairs(tiny_tokenizer), tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        sums, counts = sequence_logps(tiny_model, batch)
        expected = full_logits_logps(tiny_model, batch)
    assert torch.allclose(sums, expected, atol=1e-4)
    assert counts.tolist() == (batch["labels"][:, 1:] != -100).sum(dim=1).tolist()


def test_the_reference_policy_is_the_model_with_its_adapter_disabled(tiny_model, tiny_tokenizer):
    items = pairs(tiny_tokenizer)
    pad = tiny_tokenizer.pad_token_id
    before = pair_logps(tiny_model, items, 2, pad)
    model = get_peft_model(tiny_model, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    after = pair_logps(model, items, 2, pad)
    reference = pair_logps(model, items, 2, pad, reference=True)
    assert reference == before and after != before
    assert len(after[0]) == len(after[1]) == 3


def test_a_packed_pair_batch_gives_each_sequence_the_padded_batchs_values(tiny_model, tiny_tokenizer):
    items = pairs(tiny_tokenizer, 5)
    pad = tiny_tokenizer.pad_token_id
    padded = pair_batch(items, pad)
    packed = packed_pair_batch([items[:2], items[2:]], pad)  # two packs: the sequences of 2 and of 3 pairs
    assert packed["input_ids"].shape[0] == 2
    assert int(packed["attention_mask"].sum()) == sum(pair.tokens for pair in items)  # no padding inside a pack
    with torch.no_grad():
        padded_sums, padded_counts = sequence_logps(tiny_model, padded)
        packed_sums, packed_counts = sequence_logps(tiny_model, packed)
    assert packed_counts.tolist() == padded_counts.tolist() == supervised_tokens(padded).tolist()
    assert supervised_tokens(packed).tolist() == padded_counts.tolist()
    assert torch.allclose(packed_sums, padded_sums, atol=1e-5)
    # Each sequence's ids in the packed rows are its own: the owner of a label is the sequence of its token.
    assert sorted(set(packed[SEQUENCE_IDS][packed["attention_mask"].bool()].tolist())) == list(range(10))
