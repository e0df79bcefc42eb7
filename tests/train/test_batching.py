"""The batch plan: seeded, complete epochs; the cursor moving across epochs; padded or packed tensors."""

from tunesmith.data.tokenize import TokenizedExample
from tunesmith.train.batching import BatchPlan, epoch_batches
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
    first = plan.take(state, 2)
    assert first == plan.epoch(0)[:2] and (state.epoch, state.batch) == (0, 2)
    assert plan.progress(state) == 2 / 3
    second = plan.take(state, 2)
    assert second == [plan.epoch(0)[2], plan.epoch(1)[0]] and (state.epoch, state.batch) == (1, 1)
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
