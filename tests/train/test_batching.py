"""The batch plan: seeded, complete epochs; the cursor moving across epochs; each process's share of a global
batch; padded or packed tensors."""

import pytest

from tunesmith.data.tokenize import IGNORE_INDEX, TokenizedExample
from tunesmith.train.batching import BatchPlan, count_supervised, epoch_batches, split_evenly
from tunesmith.train.state import TrainState


def test_epoch_batches_deterministic_and_complete():
    lengths = [5, 9, 3, 7, 1, 8, 2, 6, 4, 10]
    first = epoch_batches(lengths, 3, seed=1, epoch=0, group_by_length=True)
    assert first == epoch_batches(lengths, 3, seed=1, epoch=0, group_by_length=True)
    assert sorted(i for batch in first for i in batch) == list(range(10))
    assert first != epoch_batches(lengths, 3, seed=1, epoch=1, group_by_length=True)


def rows_of(lengths: list[int]) -> list[TokenizedExample]:
    return [TokenizedExample(input_ids=list(range(1, n + 1)), labels=list(range(1, n + 1)), location=f"f:{i + 1}")
            for i, n in enumerate(lengths)]


def test_take_moves_the_cursor_into_the_next_epoch():
    lengths = [3, 5, 2, 4, 6]
    plan = BatchPlan(rows_of(lengths), lengths, batch_size=2, seed=7, pad_token_id=0, group_by_length=False)
    state = TrainState()
    assert len(plan.epoch(0)) == 3
    assert [plan.take(state), plan.take(state)] == plan.epoch(0)[:2] and (state.epoch, state.batch) == (0, 2)
    assert plan.progress(state) == 2 / 3
    assert [plan.take(state), plan.take(state)] == [plan.epoch(0)[2], plan.epoch(1)[0]]
    assert (state.epoch, state.batch) == (1, 1)
    assert plan.epoch(1) != plan.epoch(0)  # each epoch has its own seeded order
    assert sorted(i for batch in plan.epoch(1) for (i,) in batch) == list(range(5))


def test_padded_and_packed_batches_hold_the_same_tokens():
    lengths = [3, 5, 2, 4, 6]
    rows = rows_of(lengths)
    padded = BatchPlan(rows, lengths, batch_size=5, seed=0, pad_token_id=0)
    packed = BatchPlan(rows, lengths, batch_size=5, seed=0, pad_token_id=0, packing=True, max_length=8)
    padded_batch, packed_batch = padded.collate(padded.epoch(0)[0]), packed.collate(packed.epoch(0)[0])
    assert int(padded_batch["attention_mask"].sum()) == int(packed_batch["attention_mask"].sum()) == sum(lengths)
    assert packed_batch["input_ids"].shape[1] <= 8 and "position_ids" in packed_batch
    assert sorted(packed.locations(packed.epoch(0)[0])) == sorted(f"f:{i + 1}" for i in range(5))


def test_split_evenly_gives_contiguous_pieces_that_differ_by_one_at_most():
    assert split_evenly(list(range(7)), 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert split_evenly([0], 3) == [[0], [], []]


@pytest.mark.parametrize("processes, micro_batches", [(1, 1), (1, 4), (2, 2), (4, 1), (3, 2)])
def test_the_shares_of_all_processes_are_the_global_batch_in_order(processes, micro_batches):
    """However a global batch is shared out (processes x micro-batches), every row is trained once, in order: the
    layout changes who computes what, never what is trained."""
    batch = [[i] for i in range(10)]
    shares = [BatchPlan.share(batch, rank, processes, micro_batches) for rank in range(processes)]
    assert all(len(share) == micro_batches for share in shares)
    assert [pack for share in shares for micro in share for pack in micro] == batch


def test_placeholder_supervises_nothing():
    """A process whose share of an epoch's last batch is empty still runs a forward and backward pass (every
    process takes part in each gradient synchronization): on a placeholder that adds no loss."""
    lengths = [3, 5]
    plan = BatchPlan(rows_of(lengths), lengths, batch_size=8, seed=0, pad_token_id=0)
    placeholder = plan.placeholder(plan.epoch(0)[0])
    assert count_supervised(placeholder) == 0 and bool((placeholder["labels"] == IGNORE_INDEX).all())
