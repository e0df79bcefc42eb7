"""Padding-free packing: several tokenized rows share one sequence and never see each other.

Why: SFT rows are short and uneven (an SMS message is 30-120 tokens), so a padded batch spends much of its
compute on padding. Packing concatenates rows into sequences of at most `data.max_length` tokens; each row
keeps its own positions (restarting at 0) and a block-diagonal causal mask, so its loss and gradients are
exactly those of the row run alone.

Everything here is a pure function: the pack plan of an epoch is recomputed from (lengths, seed, epoch) on
resume, exactly as `batching.epoch_batches` is.
"""

from __future__ import annotations

import bisect
import random

import torch

from tunesmith.data.tokenize import IGNORE_INDEX, TokenizedExample


def best_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Indices of ``lengths`` grouped into packs whose lengths sum to at most ``capacity``.

    Longest first, each into the fullest pack it still fits (ties: the older pack); a new pack otherwise.
    Equal lengths keep their input order, so the caller's shuffle decides which rows end up together.
    """
    too_long = [i for i, length in enumerate(lengths) if length > capacity]
    if too_long:
        raise ValueError(f"row {too_long[0]} has {lengths[too_long[0]]} tokens, more than a pack holds ({capacity})")
    packs: list[list[int]] = []
    free: list[tuple[int, int]] = []  # (room left, pack index), sorted: the first that fits is the best fit
    for index in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        slot = bisect.bisect_left(free, (lengths[index], -1))
        if slot < len(free):
            room, pack = free.pop(slot)
        else:
            room, pack = capacity, len(packs)
            packs.append([])
        packs[pack].append(index)
        bisect.insort(free, (room - lengths[index], pack))
    return packs


def epoch_packed_batches(lengths: list[int], max_length: int, batch_size: int, seed: int,
                         epoch: int) -> list[list[list[int]]]:
    """Every batch of one epoch: ``batch_size`` packs each, a pack being the row indices it concatenates.

    A pure function of its arguments (exact resume relies on it). The rows are shuffled before packing so
    packs differ between epochs, and the packs are shuffled after it so long and short rows stay mixed.
    """
    rng = random.Random(f"{seed}-{epoch}")
    order = list(range(len(lengths)))
    rng.shuffle(order)
    packs = [[order[j] for j in pack] for pack in best_fit_decreasing([lengths[i] for i in order], max_length)]
    rng.shuffle(packs)
    return [packs[i : i + batch_size] for i in range(0, len(packs), batch_size)]


def collate_packed(packs: list[list[TokenizedExample]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """One sequence per pack, right-padded to the longest: input_ids, labels, attention_mask, position_ids.

    ``attention_mask`` stays the 2D real-token mask (callers count real tokens with it); the decoder gets
    `block_causal_mask(position_ids)` instead, so positions are what separate the rows. Padding tokens get
    position 0 each, making every one its own segment: nothing attends to them and they are unsupervised.
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


def block_causal_mask(position_ids: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive 4D mask [batch, 1, seq, seq]: a token attends to earlier tokens of its own row only.

    Rows are told apart by their positions restarting at 0. Additive (0 / dtype min) rather than boolean
    because transformers passes a ready 4D mask through untouched, and its eager attention adds it to the
    scores while SDPA accepts either form. The dtype minimum, not -inf, keeps softmax finite on any row.
    """
    segment = (position_ids == 0).cumsum(dim=-1)
    same_row = segment[:, :, None] == segment[:, None, :]
    seq = position_ids.shape[-1]
    causal = torch.ones((seq, seq), dtype=torch.bool, device=position_ids.device).tril()
    allowed = (same_row & causal)[:, None]
    return torch.zeros(allowed.shape, dtype=dtype, device=position_ids.device).masked_fill(
        ~allowed, torch.finfo(dtype).min
    )
