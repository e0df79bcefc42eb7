"""Padding-free packing: several tokenized rows share one sequence and never see each other.

Why: SFT rows are short and uneven (an SMS message is 30-120 tokens), so a padded batch spends much of its
compute on padding. Packing concatenates rows into sequences of at most `data.max_length` tokens; each row
keeps its own positions (restarting at 0), which is all the attention needs to keep the rows apart, so a row's
loss and gradients are exactly those of the row run alone. With sdpa and eager attention, transformers turns the
positions into a block-diagonal causal mask; with FlashAttention, `flatten_packed` and `varlen_attention_inputs`
make the batch one variable-length sequence with its row boundaries, and no mask is built at all.

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
    one after another, each still starting at position 0.

    For variable-length attention, which needs no padding. The loss stays exact: labels are shifted inside the
    one sequence, and the first token of every row is unsupervised (`collate_packed`), so no row is learned from
    the end of the row before it.
    """
    real = batch["attention_mask"].bool()
    return {"input_ids": batch["input_ids"][real][None], "labels": batch["labels"][real][None],
            "attention_mask": batch["attention_mask"][real][None], "position_ids": batch["position_ids"][real][None]}


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
