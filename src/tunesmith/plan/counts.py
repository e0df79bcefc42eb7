"""What a run will train on, counted before it trains: rows per split, tokens per epoch, optimizer steps, and the
work of each step in padded tokens (what the compute is spent on), from the data stage's tokenized cache.

Nothing here decides anything of its own: the rows are `tunesmith.train.rows.training_rows` (the tokenized
cache: a second run with the same inputs reads it and tokenizes nothing), the batches are the recipe's
`BatchPlan` (`batch_plan_of`), and the steps are `tunesmith.train.budget.plan_budget`, called as the recipe calls
them. So a plan's steps are the steps the run takes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from tunesmith import distributed
from tunesmith.config.schema import RunConfig
from tunesmith.data.cache import row_lengths
from tunesmith.data.example import Splits
from tunesmith.train.batching import Batch, BatchPlan
from tunesmith.train.budget import Budget, describe_budget, plan_budget
from tunesmith.train.recipe import batch_plan_of
from tunesmith.train.resume import global_batch_of


@dataclass(frozen=True)
class Counts:
    rows: dict[str, int]
    """Rows per split as read (train, validation, test)."""
    train_rows: int
    """Training rows that keep a supervised token after truncation (what training batches); for a preference method
    the pairs whose two answers keep one (each pair is two sequences)."""
    tokens_per_epoch: int
    """Real (non-padding) tokens of the training rows (both sequences of each pair): one pass over them."""
    validation_tokens: int
    steps_per_epoch: int
    steps: int
    epochs: float
    eval_every: int
    save_every: int
    budget: str
    """How the steps were chosen, as the run's log will say it."""
    global_batch: int
    padded_tokens_per_step: float
    """Mean padded tokens of a step in the first epoch, on the busiest process: what a step computes on."""
    longest_step: int
    """Index (in the first epoch) of the step with the most padded tokens: where the probe measures."""
    longest_step_tokens: int
    longest_micro_batch: tuple[int, int]
    """``(rows or packs, width)`` of the largest micro-batch tensor: what the activations' peak is sized by (a batch
    of pairs has two rows a pair)."""

    def to_json(self) -> dict:
        return asdict(self)


def batch_plan(config: RunConfig, train_rows, pad_token_id: int) -> BatchPlan:
    """The recipe's batch plan of ``train_rows`` (`tunesmith.train.recipe.set_up` builds the same)."""
    return batch_plan_of(config, train_rows, pad_token_id)


def budget_of(config: RunConfig, train_rows, plan: BatchPlan, started: Budget | None = None) -> Budget:
    """The recipe's budget (`tunesmith.train.recipe.set_up` calls `plan_budget` the same way)."""
    return plan_budget(config.train, len(train_rows), len(plan.epoch(0)), started)


def micro_batch_shapes(plan: BatchPlan, batch: Batch, processes: int,
                       micro_batches: int) -> list[list[tuple[int, int]]]:
    """Per process, the ``(rows, width)`` of each of its micro-batch tensors for ``batch`` (as `BatchPlan.collate`
    pads them: every row, or pack, to the micro-batch's longest; a padded pair is two rows)."""
    lengths = plan.lengths
    shapes = []
    for rank in range(processes):
        shares = BatchPlan.share(batch, rank, processes, micro_batches)
        shapes.append([(plan.rows_per_pack * len(share), max(sum(int(lengths[i]) for i in pack) for pack in share))
                       for share in shares if share])
    return shapes


def sequence_tokens(rows: Sequence) -> int:
    """Real tokens of tokenized rows, or of pairs (both sequences)."""
    if len(rows) and hasattr(rows[0], "rejected"):
        return sum(len(pair.chosen.input_ids) + len(pair.rejected.input_ids) for pair in rows)
    return int(sum(int(n) for n in row_lengths(rows))) if len(rows) else 0


def count_run(config: RunConfig, splits: Splits, train_rows: Sequence, validation_rows: Sequence, plan: BatchPlan,
              budget: Budget) -> Counts:
    processes, micro_batches = distributed.world_size(), config.train.grad_accumulation
    work, widest = [], (0, 0)
    for batch in plan.epoch(0):
        shapes = micro_batch_shapes(plan, batch, processes, micro_batches)
        work.append(max(sum(rows * width for rows, width in process) for process in shapes))
        widest = max([widest] + [shape for process in shapes for shape in process], key=lambda s: s[0] * s[1])
    longest = max(range(len(work)), key=work.__getitem__)
    return Counts(
        rows={"train": len(splits.train) or len(train_rows),  # streaming reads none up front
              "validation": len(splits.validation), "test": len(splits.test)},
        train_rows=len(train_rows), tokens_per_epoch=sequence_tokens(train_rows),
        validation_tokens=sequence_tokens(validation_rows),
        steps_per_epoch=len(work), steps=budget.steps, epochs=budget.epochs, eval_every=budget.eval_every,
        save_every=budget.save_every, budget=describe_budget(budget, config.train),
        global_batch=global_batch_of(config), padded_tokens_per_step=sum(work) / len(work), longest_step=longest,
        longest_step_tokens=work[longest], longest_micro_batch=widest,
    )
