"""The preference losses (`method: dpo | orpo | simpo`): what a step of a preference run minimizes, its metrics, and
its validation.

A batch is pairs: the chosen sequences, then the rejected ones (`tunesmith.predict.preference.pair_batch`, TRL's
order). Each sequence's log-probability is the sum over its answer tokens (`sequence_logps`); the losses, per pair:

- ``dpo``: ``-log σ(β·((log π(c) - log π_ref(c)) - (log π(r) - log π_ref(r))))`` (Rafailov et al. 2023), with the
  reference policy the model with its adapter disabled (the base, or the `model.init_from` SFT model: no second
  copy of the weights); computed as TRL's DPOTrainer computes its default `sigmoid` loss;
- ``simpo``: ``-log σ(β·(mean log π(c) - mean log π(r)) - γ)`` (Meng et al. 2024; TRL's CPO ``loss_type="simpo"``
  with ``cpo_alpha=0``), no reference;
- ``orpo``: ``-mean log π(c) - β·log σ(log odds(c) - log odds(r))`` with ``odds = p / (1 - p)`` of the mean token
  probability (Hong et al. 2024), no reference. The chosen answer's negative log-likelihood is each pair's own
  token mean; TRL's ORPOTrainer takes the token mean over the whole batch's chosen answers instead, which is the
  same number when the chosen answers of a batch have equal lengths, but would make the loss of a pair depend on
  the other pairs of its micro-batch (and so on `grad_accumulation`).

`sft_weight` α adds ``α·(-mean log π(c))`` to a dpo or simpo pair's loss (RPO, Pang et al. 2024: TRL's
``loss_type=["sigmoid", "sft"]``, ``loss_weights=[1, α]``, whose term is the token mean over the batch's chosen
answers, the same number as this per-pair mean when a batch's chosen answers have equal lengths, as for ORPO).

`label_smoothing` ε mixes in the loss of the opposite preference, ``(1 - ε)·ℓ(m) + ε·ℓ(-m)`` (conservative DPO, as
TRL's CPO trainer applies it to SimPO; TRL 1.16's DPO `sigmoid` loss has no smoothing term, so compare at ε = 0).

The module returns the *sum* of its pairs' losses; the recipe divides by the pairs of the whole global batch, so
micro-batches and processes add up to the loss of one large batch, as SFT's token normalizer does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from tunesmith import distributed
from tunesmith.config.preference_section import preference_beta
from tunesmith.config.schema import RunConfig
from tunesmith.data.pairs import TokenizedPair
from tunesmith.predict.preference import (
    implicit_rewards,
    packed_pair_batch,
    pair_batch,
    reference_policy,
    sequence_logps,
    supervised_tokens,
)
from tunesmith.predict.validation_values import STEP_MEASURES as STEP_MEASURES  # below the UI, which draws them
from tunesmith.predict.validation_values import VAL_LOSS
from tunesmith.predict.validation_values import VALIDATION_MEASURES as VALIDATION_MEASURES
from tunesmith.train.batching import Batch, BatchPlan


def pair_losses(method: str, beta: float, chosen: torch.Tensor, rejected: torch.Tensor, chosen_tokens: torch.Tensor,
                rejected_tokens: torch.Tensor, reference_chosen: torch.Tensor | None = None,
                reference_rejected: torch.Tensor | None = None, simpo_gamma: float = 0.5,
                label_smoothing: float = 0.0, sft_weight: float = 0.0) -> torch.Tensor:
    """Each pair's loss under ``method`` (log-probability sums and answer token counts per pair in)."""
    chosen_mean = chosen / chosen_tokens.clamp(min=1)
    rejected_mean = rejected / rejected_tokens.clamp(min=1)
    imitation = -sft_weight * chosen_mean if sft_weight else 0.0
    if method == "dpo":
        if reference_chosen is None or reference_rejected is None:
            raise ValueError("the dpo loss needs the reference policy's log-probabilities")
        margin = beta * ((chosen - reference_chosen) - (rejected - reference_rejected))
        return _smoothed(margin, label_smoothing) + imitation
    if method == "simpo":
        return _smoothed(beta * (chosen_mean - rejected_mean) - simpo_gamma, label_smoothing) + imitation
    if method == "orpo":
        odds_chosen, odds_rejected = implicit_rewards("orpo", beta, chosen, rejected, chosen_tokens=chosen_tokens,
                                                      rejected_tokens=rejected_tokens)
        return -chosen_mean - beta * F.logsigmoid(odds_chosen - odds_rejected)
    raise ValueError(f"{method!r} is not a preference method (dpo, orpo, simpo)")


def _smoothed(margin: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    return -F.logsigmoid(margin) * (1 - label_smoothing) - F.logsigmoid(-margin) * label_smoothing


class PreferenceLoss(torch.nn.Module):
    """A model whose forward is the summed preference loss of a pair batch: what accelerate wraps for training (a
    module for the reason `tunesmith.predict.loss.SupervisedLoss` is one).

    Returns ``(loss sum, [chosen reward sum, rejected reward sum, pairs ranked right])``, over the pairs whose
    two answers keep a supervised token: a placeholder micro-batch (`BatchPlan.placeholder`, no supervised token)
    adds nothing, as it adds nothing to SFT's loss."""

    def __init__(self, model, method: str, beta: float, simpo_gamma: float = 0.5, label_smoothing: float = 0.0,
                 sft_weight: float = 0.0):
        super().__init__()
        self.model = model
        self.method, self.beta, self.simpo_gamma, self.label_smoothing = method, beta, simpo_gamma, label_smoothing
        self.sft_weight = sft_weight

    @classmethod
    def of(cls, model, config: RunConfig) -> PreferenceLoss:
        settings = config.preference
        return cls(model, config.method, preference_beta(config), settings.simpo_gamma, settings.label_smoothing,
                   settings.sft_weight)

    def forward(self, **batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        sums, tokens = sequence_logps(self.model, batch)
        chosen, rejected = sums.chunk(2)
        chosen_tokens, rejected_tokens = tokens.chunk(2)
        reference_chosen = reference_rejected = None
        if self.method == "dpo":
            with torch.no_grad(), reference_policy(self.model):
                reference_chosen, reference_rejected = sequence_logps(self.model, batch)[0].chunk(2)
        losses = pair_losses(self.method, self.beta, chosen, rejected, chosen_tokens, rejected_tokens,
                             reference_chosen, reference_rejected, self.simpo_gamma, self.label_smoothing,
                             self.sft_weight)
        real = (chosen_tokens > 0) & (rejected_tokens > 0)
        with torch.no_grad():
            reward_chosen, reward_rejected = implicit_rewards(
                self.method, self.beta, chosen.detach(), rejected.detach(), reference_chosen, reference_rejected,
                chosen_tokens, rejected_tokens)
            measures = torch.stack([reward_chosen[real].sum(), reward_rejected[real].sum(),
                                    (reward_chosen > reward_rejected)[real].sum().float()])
        return torch.where(real, losses, torch.zeros_like(losses)).sum(), measures


def count_pairs(batch: dict[str, torch.Tensor]) -> int:
    """Pairs of a pair batch (padded or packed) whose two answers keep a supervised token: the step normalizer's
    unit."""
    chosen, rejected = (supervised_tokens(batch) > 0).chunk(2)
    return int((chosen & rejected).sum())


def step_measures(measures: Sequence[torch.Tensor], pairs: int) -> dict[str, float]:
    """The step's `STEP_MEASURES` from its micro-batches' sums (every process's: this all-reduces) and its pairs."""
    chosen, rejected, right = distributed.all_reduce_sum([float(sum(float(m[i]) for m in measures))
                                                         for i in range(3)])
    return {"rewards_chosen": chosen / pairs, "rewards_rejected": rejected / pairs,
            "reward_margin": (chosen - rejected) / pairs, "preference_accuracy": right / pairs}


class PairBatchPlan(BatchPlan):
    """`BatchPlan` over pairs: a pair is one item. Padded, it is as long as its longer sequence and becomes two rows
    of a batch (`pair_batch`); with ``packing``, both its sequences go whole into one pack of up to
    ``2 * max_length`` tokens (`packed_pair_batch`: a pair's sequences are each at most ``max_length``, so any pair
    fits), packed best-fit decreasing as SFT rows are, and ``batch_size`` counts packs."""

    def __init__(self, pairs: Sequence[TokenizedPair], batch_size: int, seed: int, pad_token_id: int,
                 group_by_length: bool = True, packing: bool = False, max_length: int = 0):
        lengths = [pair.tokens if packing else pair.length for pair in pairs]
        super().__init__(pairs, lengths, batch_size, seed, pad_token_id, packing=packing,
                         group_by_length=group_by_length, max_length=2 * max_length)
        self.rows_per_pack = 1 if packing else 2

    def collate(self, batch: Batch) -> dict[str, torch.Tensor]:
        if self.packing:
            return packed_pair_batch([[self.rows[i] for i in pack] for pack in batch], self.pad_token_id)
        return pair_batch([self.rows[i] for (i,) in batch], self.pad_token_id)

    def count(self, tensors: dict[str, torch.Tensor]) -> int:
        return count_pairs(tensors)

    def real_tokens(self, batch: Batch) -> int:
        return sum(len(self.rows[i].chosen.input_ids) + len(self.rows[i].rejected.input_ids)
                   for pack in batch for i in pack)


@torch.no_grad()
def pair_validation(loss_module, pairs: Sequence[TokenizedPair], batch_size: int,
                    pad_token_id: int) -> dict[str, float]:
    """``{"val_loss", "val_preference_accuracy", "val_reward_margin"}`` over ``pairs``: the mean pair loss (what
    chooses the best weights), the share of pairs ranked right, the mean reward margin. ``loss_module`` is the
    (wrapped) `PreferenceLoss`; in a job of several processes every process scores its share and the sums are
    added up."""
    was_training = loss_module.training
    loss_module.eval()
    device = next(loss_module.parameters()).device
    order = sorted(range(len(pairs)), key=lambda i: pairs[i].length)  # less padding
    mine = distributed.shard(order)
    totals = [0.0, 0.0, 0.0, 0.0]
    count = 0
    try:
        for start in range(0, len(mine), batch_size):
            batch = pair_batch([pairs[i] for i in mine[start : start + batch_size]], pad_token_id)
            loss_sum, measures = loss_module(**{key: value.to(device) for key, value in batch.items()})
            for index, value in enumerate([loss_sum, *measures]):
                totals[index] += float(value)
            count += count_pairs(batch)
    finally:
        loss_module.train(was_training)
    loss, chosen, rejected, right, count = distributed.all_reduce_sum([*totals, count])
    if not count:
        return {VAL_LOSS: float("nan"), "val_preference_accuracy": None, "val_reward_margin": None}
    return {VAL_LOSS: loss / count, "val_preference_accuracy": right / count,
            "val_reward_margin": (chosen - rejected) / count}
