"""The tensors of tokenized rows, token by token: a packed batch keeps its rows apart by their positions, and its
flattened form gives FlashAttention the rows' boundaries."""

import torch

from tunesmith.data.tokenize import IGNORE_INDEX, TokenizedExample
from tunesmith.predict.model_inputs import collate_packed, flatten_packed, varlen_attention_inputs
from tunesmith.train.batching import count_supervised


def test_collate_packed_token_by_token():
    a = TokenizedExample(input_ids=[11, 12, 13], labels=[IGNORE_INDEX, 12, 13], location="a")
    b = TokenizedExample(input_ids=[21, 22], labels=[21, 22], location="b")  # as with `loss_on: all`
    c = TokenizedExample(input_ids=[31, 32, 33], labels=[IGNORE_INDEX, IGNORE_INDEX, 33], location="c")
    batch = collate_packed([[a, b], [c]], pad_token_id=0)
    x = IGNORE_INDEX
    assert batch["input_ids"].tolist() == [[11, 12, 13, 21, 22], [31, 32, 33, 0, 0]]
    assert batch["labels"].tolist() == [[x, 12, 13, x, 22], [x, x, 33, x, x]]  # 21 is not learned from 13
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1], [0, 1, 2, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    assert count_supervised(batch) == 4


def test_flatten_packed_and_varlen_inputs_by_hand():
    a = TokenizedExample(input_ids=[11, 12, 13], labels=[IGNORE_INDEX, 12, 13], location="a")
    b = TokenizedExample(input_ids=[21, 22], labels=[21, 22], location="b")
    c = TokenizedExample(input_ids=[31, 32, 33], labels=[IGNORE_INDEX, IGNORE_INDEX, 33], location="c")
    flat = flatten_packed(collate_packed([[a, b], [c]], pad_token_id=0))
    x = IGNORE_INDEX
    assert flat["input_ids"].tolist() == [[11, 12, 13, 21, 22, 31, 32, 33]]  # the padding after c is gone
    assert flat["labels"].tolist() == [[x, 12, 13, x, 22, x, x, 33]]
    assert flat["position_ids"].tolist() == [[0, 1, 2, 0, 1, 0, 1, 2]]
    assert count_supervised(flat) == 4
    inputs = varlen_attention_inputs(flat["position_ids"])
    assert inputs["cu_seq_lens_q"].tolist() == inputs["cu_seq_lens_k"].tolist() == [0, 3, 5, 8]
    assert inputs["cu_seq_lens_q"].dtype == torch.int32
    assert inputs["max_length_q"] == inputs["max_length_k"] == 3 and isinstance(inputs["max_length_q"], int)
