"""The batch plan: which rows make each optimizer step of each epoch, and how they become tensors.

A plan batch is a *global* batch: every row of one optimizer step, ``batch_size x processes x
grad_accumulation`` rows (or packs). Each process takes its contiguous share of it and splits that into its
``grad_accumulation`` micro-batches (`BatchPlan.share`). So the rows of a step, their order and the cursor do
not depend on how many processes share them: 2 processes x 4 rows train on exactly the rows of 1 process x 8,
and a checkpoint written by one layout resumes under another with the same global batch.

Everything here is a pure function of (row lengths, settings, seed, epoch), so the order of a resumed run is
recomputed, not stored: the checkpoint only keeps the cursor (`TrainState.epoch`, `TrainState.batch`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from tunesmith.data.tokenize import IGNORE_INDEX, TokenizedExample
from tunesmith.predict.model_inputs import collate, collate_packed
from tunesmith.train.packing import epoch_packed_batches
from tunesmith.train.state import TrainState

# Rows are sorted by length inside windows of this many batches: most of the padding saving of a global sort,
# while batches still mix the dataset (a global sort would feed all short rows first).
_LENGTH_GROUP_WINDOW = 64

Batch = list[list[int]]
"""A batch is a list of packs; a pack is the row indices concatenated into one sequence (one row unless
packing)."""


def epoch_batches(lengths: Sequence[int], batch_size: int, seed: int, epoch: int,
                  group_by_length: bool) -> list[list[int]]:
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


def split_evenly(items: list, parts: int) -> list[list]:
    """``items`` cut into ``parts`` contiguous pieces whose sizes differ by at most one (the first ones larger;
    some are empty when there are fewer items than parts)."""
    size, extra = divmod(len(items), parts)
    pieces, start = [], 0
    for part in range(parts):
        end = start + size + (part < extra)
        pieces.append(items[start:end])
        start = end
    return pieces


def count_supervised(batch: dict[str, torch.Tensor]) -> int:
    """Tokens that carry a loss: labels are shifted by one, so the first position never counts."""
    return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())


class BatchPlan:
    """The batches of every epoch over ``rows``: padded rows (length-grouped unless ``group_by_length`` is off),
    or with ``packing`` rows packed into sequences of up to ``max_length`` tokens (`tunesmith.train.packing`)."""

    rows_per_pack = 1
    """Rows of a collated batch per pack (a padded pair is two)."""

    def __init__(self, rows: Sequence[TokenizedExample], lengths: Sequence[int], batch_size: int, seed: int,
                 pad_token_id: int, packing: bool = False, group_by_length: bool = True, max_length: int = 0):
        self.rows, self.lengths = rows, lengths
        self.batch_size, self.seed, self.pad_token_id = batch_size, seed, pad_token_id
        self.packing, self.group_by_length, self.max_length = packing, group_by_length, max_length
        self._epoch: tuple[int, list[Batch]] | None = None  # the last epoch planned: planning shuffles every row

    def epoch(self, epoch: int) -> list[Batch]:
        if self._epoch is None or self._epoch[0] != epoch:
            if self.packing:
                batches = epoch_packed_batches(self.lengths, self.max_length, self.batch_size, self.seed, epoch)
            else:
                batches = [[[i] for i in rows] for rows in epoch_batches(
                    self.lengths, self.batch_size, self.seed, epoch, self.group_by_length)]
            self._epoch = (epoch, batches)
        return self._epoch[1]

    def take(self, state: TrainState) -> Batch:
        """The next (global) batch from ``state``'s cursor, which moves past it (into the next epoch when this
        one runs out)."""
        if state.batch >= len(self.epoch(state.epoch)):
            state.epoch, state.batch = state.epoch + 1, 0
        state.batch += 1
        return self.epoch(state.epoch)[state.batch - 1]

    @staticmethod
    def share(batch: Batch, rank: int, processes: int, micro_batches: int) -> list[Batch]:
        """Process ``rank``'s ``micro_batches`` micro-batches of a global ``batch``: its contiguous share, cut
        evenly. A micro-batch is empty when the batch (an epoch's last) has fewer rows than micro-batches in
        the whole job; the caller still runs a `placeholder` for it, since every process must take part in
        each gradient synchronization."""
        return split_evenly(split_evenly(batch, processes)[rank], micro_batches)

    def progress(self, state: TrainState) -> float:
        """Epochs done at ``state``'s cursor, as a fraction."""
        return state.epoch + state.batch / len(self.epoch(state.epoch))

    def collate(self, batch: Batch) -> dict[str, torch.Tensor]:
        if self.packing:
            return collate_packed([[self.rows[i] for i in pack] for pack in batch], self.pad_token_id)
        return collate([self.rows[i] for (i,) in batch], self.pad_token_id)

    def count(self, tensors: dict[str, torch.Tensor]) -> int:
        """What the step's loss is normalized by, in a collated micro-batch: its supervised tokens."""
        return count_supervised(tensors)

    def real_tokens(self, batch: Batch) -> int:
        """The non-padding tokens of ``batch``."""
        return int(sum(self.lengths[i] for pack in batch for i in pack))

    def placeholder(self, batch: Batch) -> dict[str, torch.Tensor]:
        """A micro-batch that adds nothing: the first pack of ``batch`` with no supervised token (its loss and
        gradients are zero), run by a process whose share of an epoch's last batch is empty."""
        tensors = self.collate(batch[:1])
        tensors["labels"].fill_(IGNORE_INDEX)
        return tensors

    def locations(self, batch: Batch) -> list[str]:
        """``FILE:LINE`` of every row in ``batch``."""
        return [self.rows[i].location for pack in batch for i in pack]
