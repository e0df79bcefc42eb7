"""Batch order and collation. Pure functions, so the order of a resumed run is recomputed, not stored."""

from __future__ import annotations

import random

import torch

from tunesmith.data.tokenize import IGNORE_INDEX, TokenizedExample

# Rows are sorted by length inside windows of this many batches: most of the padding saving of a global sort,
# while batches still mix the dataset (a global sort would feed all short rows first).
_LENGTH_GROUP_WINDOW = 64


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int, group_by_length: bool) -> list[list[int]]:
    """Row indices of every batch of one epoch; a pure function of its arguments (exact resume relies on it)."""
    rng = random.Random(f"{seed}-{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if not group_by_length:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    window = batch_size * _LENGTH_GROUP_WINDOW
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: -lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


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


def count_supervised(batch: dict[str, torch.Tensor]) -> int:
    """Tokens that carry a loss: labels are shifted by one, so the first position never counts."""
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())
