"""Tokenized rows → the tensors a causal LM reads: right-padded rows (`collate`), packed rows (`collate_packed`:
several rows in one sequence, each with its own positions), and a packed batch as one variable-length sequence
for FlashAttention (`flatten_packed`, `varlen_attention_inputs`).

Pure functions below both training (its batch plan, `tunesmith.train.batching`) and the loss that training and
evaluation share (`tunesmith.predict.loss`). How rows are grouped into packs is training's
(`tunesmith.train.packing`).
"""

from __future__ import annotations

import torch

from tunesmith.data.tokenize import IGNORE_INDEX, TokenizedExample


def collate(rows: list[TokenizedExample], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad a list of tokenized rows into input_ids / attention_mask / labels tensors."""
    width = max(len(row.input_ids) for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        n = len(row.input_ids)
        input_ids[i, :n] = torch.tensor(row.input_ids)
        labels[i, :n] = torch.tensor(row.labels)
        attention_mask[i, :n] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def collate_packed(packs: list[list[TokenizedExample]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """One sequence per pack, right-padded to the longest: input_ids, labels, attention_mask, position_ids.

    ``attention_mask`` stays the 2D real-token mask (callers count real tokens with it); the decoder gets the
    positions instead, and they are what separate the rows. Padding tokens get position 0 each, making every one
    its own segment: nothing attends to them and they are unsupervised.
    """
    width = max(sum(len(row.input_ids) for row in pack) for pack in packs)
    input_ids = torch.full((len(packs), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(packs), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(packs), width), dtype=torch.long)
    position_ids = torch.zeros((len(packs), width), dtype=torch.long)
    for b, pack in enumerate(packs):
        start = 0
        for row in pack:
            end = start + len(row.input_ids)
            input_ids[b, start:end] = torch.tensor(row.input_ids)
            labels[b, start:end] = torch.tensor(row.labels)
            # The loss predicts labels[t] from position t-1: a row's first token must not be learned from the
            # previous row's last one. Prompts are unsupervised anyway, but `loss_on: all` supervises them.
            labels[b, start] = IGNORE_INDEX
            attention_mask[b, start:end] = 1
            position_ids[b, start:end] = torch.arange(end - start)
            start = end
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels, "position_ids": position_ids}


def flatten_packed(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A packed batch as one sequence of its real tokens, shape [1, tokens]: padding dropped, rows (and packs)
    one after another, each still starting at position 0. Every per-token tensor of the batch is flattened alike
    (a packed pair batch's `sequence_ids` too).

    For variable-length attention, which needs no padding. The loss stays exact: labels are shifted inside the
    one sequence, and the first token of every row is unsupervised (`collate_packed`), so no row is learned from
    the end of the row before it.
    """
    real = batch["attention_mask"].bool()
    return {key: value[real][None] for key, value in batch.items()}


def varlen_attention_inputs(position_ids: torch.Tensor) -> dict[str, torch.Tensor | int]:
    """The keyword arguments with which transformers' FlashAttention runs ``flash_attn_varlen_func`` on a
    flattened batch (`flatten_packed`): the positions (for rotary embeddings) and the rows' cumulative lengths.

    Given here once per batch rather than left to transformers: it would derive them from the positions in
    every layer, and read them back from the GPU each time.
    """
    (starts,) = (position_ids[0] == 0).nonzero(as_tuple=True)
    total = torch.tensor([position_ids.shape[1]], device=position_ids.device)
    boundaries = torch.cat([starts, total]).to(torch.int32)
    longest = int(boundaries.diff().max())
    return {"position_ids": position_ids, "cu_seq_lens_q": boundaries, "cu_seq_lens_k": boundaries,
            "max_length_q": longest, "max_length_k": longest}
