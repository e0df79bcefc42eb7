"""Padding-free packing: several tokenized rows share one sequence and never see each other.

Why: SFT rows are short and uneven (an SMS message is 30-120 tokens), so a padded batch spends much of its
compute on padding. Packing concatenates rows into sequences of at most `data.max_length` tokens; each row
keeps its own positions (restarting at 0), which is all the attention needs to keep the rows apart, so a row's
loss and gradients are exactly those of the row run alone. With sdpa and eager attention, transformers turns the
positions into a block-diagonal causal mask; with FlashAttention, `flatten_packed` and `varlen_attention_inputs`
make the batch one variable-length sequence with its row boundaries, and no mask is built at all. Those and
`collate_packed`, which lays a pack out as one sequence, are in `tunesmith.predict.model_inputs`; here is which
rows share a pack.

Everything here is a pure function: the pack plan of an epoch is recomputed from (lengths, seed, epoch) on
resume, exactly as `batching.epoch_batches` is.
"""

from __future__ import annotations

import bisect
import random


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
