"""Sequence log-probabilities of preference pairs: what the DPO-family losses, their validation and evaluation's
preference accuracy are computed from.

A sequence's log-probability is the sum, over its supervised positions (the answer, `tunesmith.data.pairs`), of
the log-probability of the token there. As in `tunesmith.predict.loss`, the decoder runs once over the batch and
the LM head is applied to the supervised positions alone, in chunks: a [rows, length, vocab] logits tensor is
never made.

A pair batch is padded (`pair_batch`: a row per sequence) or packed (`packed_pair_batch`: whole pairs, both
sequences, laid one after another in a row, each with its own positions, as SFT packs rows); a packed batch says
which sequence every token belongs to (`SEQUENCE_IDS`), and the sums are taken per sequence, so a pair's
log-probabilities are the same either way.

The reference policy of a run that continues from an SFT run is that SFT model (its adapter merged into the
weights, `model.init_from`); the new adapter disabled gives it (`reference_logps`), so no second copy of the model
is held.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from tunesmith.data.pairs import TokenizedPair
from tunesmith.data.tokenize import IGNORE_INDEX
from tunesmith.predict.loss import _causal_lm, decoder_hidden_states
from tunesmith.predict.model_inputs import collate, collate_packed

_HEAD_CHUNK_ROWS = 2048
SEQUENCE_IDS = "sequence_ids"
"""The key of a packed pair batch's per-token sequence index: pair ``j``'s chosen sequence is ``j``, its rejected
one ``pairs + j`` (the padded layout's row order), padding 0 (it carries no label)."""


def pair_batch(pairs: Sequence[TokenizedPair], pad_token_id: int) -> dict[str, torch.Tensor]:
    """One padded batch of ``2 * len(pairs)`` rows: the chosen sequences first, then the rejected ones (TRL's
    order), so ``logps.chunk(2)`` gives ``(chosen, rejected)``."""
    return collate([pair.chosen for pair in pairs] + [pair.rejected for pair in pairs], pad_token_id)


def packed_pair_batch(packs: Sequence[Sequence[TokenizedPair]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """One row per pack: each pair's chosen then rejected sequence, one after another, each starting at position 0
    (`collate_packed`), with the `SEQUENCE_IDS` that let `sequence_logps` give the padded layout's per-sequence
    values (chosen sequences first, then the rejected ones)."""
    batch = collate_packed([[side for pair in pack for side in (pair.chosen, pair.rejected)] for pack in packs],
                           pad_token_id)
    pairs = sum(len(pack) for pack in packs)
    sequence_ids = torch.zeros_like(batch["input_ids"])
    index = 0
    for row, pack in enumerate(packs):
        start = 0
        for pair in pack:
            for owner, side in ((index, pair.chosen), (pairs + index, pair.rejected)):
                sequence_ids[row, start : start + len(side.input_ids)] = owner
                start += len(side.input_ids)
            index += 1
    return {**batch, SEQUENCE_IDS: sequence_ids}


def label_owners(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """``(owner of each shifted label [rows, length - 1], sequences)``: the sequence whose answer each label of
    ``batch`` belongs to, a row of a padded batch or a `SEQUENCE_IDS` entry of a packed one."""
    targets = batch["labels"][:, 1:]
    if SEQUENCE_IDS in batch:
        # A label's sequence is that of its own token (the first token of every sequence carries no label).
        return batch[SEQUENCE_IDS][:, 1:], int(batch[SEQUENCE_IDS].max()) + 1
    rows = torch.arange(targets.shape[0], device=targets.device).unsqueeze(1).expand_as(targets)
    return rows, targets.shape[0]


def supervised_tokens(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Each sequence's supervised tokens (chosen sequences first, then the rejected ones), padded or packed."""
    owners, sequences = label_owners(batch)
    keep = batch["labels"][:, 1:] != IGNORE_INDEX
    return torch.zeros(sequences, dtype=torch.long, device=owners.device).index_add(
        0, owners[keep], torch.ones_like(owners[keep]))


def sequence_logps(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(log-probability sums, supervised token counts)``, one per sequence of ``batch`` (input_ids,
    attention_mask, labels; right-padded, or packed with position_ids and `SEQUENCE_IDS`), in float32;
    differentiable when gradients are enabled."""
    lm = _causal_lm(model)
    hidden, batch = decoder_hidden_states(model, batch)
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE_INDEX
    owners, sequences = label_owners(batch)
    selected, wanted, owners = hidden[:, :-1][keep], targets[keep], owners[keep]
    head = lm.get_output_embeddings()
    softcap = getattr(lm.config, "final_logit_softcapping", None)
    pieces = []
    for start in range(0, selected.shape[0], _HEAD_CHUNK_ROWS):
        logits = head(selected[start : start + _HEAD_CHUNK_ROWS]).float()
        if softcap is not None:
            logits = softcap * torch.tanh(logits / softcap)
        pieces.append(-F.cross_entropy(logits, wanted[start : start + _HEAD_CHUNK_ROWS], reduction="none"))
    token_logps = torch.cat(pieces) if pieces else hidden.new_zeros(0, dtype=torch.float32)
    sums = torch.zeros(sequences, dtype=torch.float32, device=targets.device).index_add(0, owners, token_logps)
    counts = torch.zeros(sequences, dtype=torch.long, device=targets.device).index_add(
        0, owners, torch.ones_like(owners))
    return sums, counts


@contextlib.contextmanager
def reference_policy(model):
    """The reference policy for the block: the model with its (new) adapter disabled; a model without an adapter
    is its own reference."""
    with model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext():
        yield model


def pair_logps(model, pairs: Sequence[TokenizedPair], batch_size: int, pad_token_id: int,
               reference: bool = False) -> tuple[list[float], list[float]]:
    """``(chosen log-probabilities, rejected log-probabilities)`` of ``pairs`` under ``model`` (or, with
    ``reference``, its reference policy), without gradients, ``batch_size`` pairs at a time."""
    device = next(model.parameters()).device
    chosen: list[float] = []
    rejected: list[float] = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), (reference_policy(model) if reference else contextlib.nullcontext()):
            for start in range(0, len(pairs), batch_size):
                batch = pair_batch(pairs[start : start + batch_size], pad_token_id)
                sums, _ = sequence_logps(model, {key: value.to(device) for key, value in batch.items()})
                first, second = sums.chunk(2)
                chosen += first.tolist()
                rejected += second.tolist()
    finally:
        model.train(was_training)
    return chosen, rejected


def implicit_rewards(method: str, beta: float, chosen: torch.Tensor, rejected: torch.Tensor,
                     reference_chosen: torch.Tensor | None = None, reference_rejected: torch.Tensor | None = None,
                     chosen_tokens: torch.Tensor | None = None, rejected_tokens: torch.Tensor | None = None,
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each answer's implicit reward under ``method`` (log-probability sums per pair in, as `sequence_logps` gives):

    - ``dpo``: ``beta * (log p(answer) - log p_ref(answer))``: how far the policy moved from the reference;
    - ``simpo``: ``beta * log p(answer) / answer tokens`` (SimPO has no reference; its margin ``gamma`` belongs to
      the loss, not the reward);
    - ``orpo``: the log-odds of the answer's mean token probability, ``log(p / (1 - p))`` with ``log p`` the
      length-normalized log-probability (ORPO's odds ratio compares these).

    A pair is ranked right when the chosen answer's reward is above the rejected one's (preference accuracy)."""
    if method == "dpo":
        if reference_chosen is None or reference_rejected is None:
            raise ValueError("dpo rewards need the reference policy's log-probabilities")
        return beta * (chosen - reference_chosen), beta * (rejected - reference_rejected)
    if chosen_tokens is None or rejected_tokens is None:
        raise ValueError(f"{method} rewards need each answer's token count")
    chosen_mean, rejected_mean = chosen / chosen_tokens.clamp(min=1), rejected / rejected_tokens.clamp(min=1)
    if method == "simpo":
        return beta * chosen_mean, beta * rejected_mean
    if method == "orpo":
        return _log_odds(chosen_mean), _log_odds(rejected_mean)
    raise ValueError(f"{method!r} is not a preference method (dpo, orpo, simpo)")


def _log_odds(mean_logp: torch.Tensor) -> torch.Tensor:
    # log(p / (1 - p)) from log p, stably: log p - log(1 - exp(log p)).
    return mean_logp - torch.log1p(-torch.exp(mean_logp).clamp(max=1 - 1e-7))
