"""Cross-entropy on supervised positions only: the loss training minimizes (`SupervisedLoss`), its validation loss
and evaluation's test loss (`mean_supervised_loss`), one function for all three.

Why not `model(labels=...)`: that materializes [batch, seq, vocab] logits for every position, and with a
49k vocabulary the LM head is ~20% of SmolLM2's compute. SFT supervises only the answers (often a few
tokens per row), so we run the decoder, keep the hidden states at supervised positions, and apply the head
to those alone, in chunks. Same loss and gradients, less time and memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tunesmith import distributed
from tunesmith.data.tokenize import IGNORE_INDEX
from tunesmith.predict.model_inputs import collate, flatten_packed, varlen_attention_inputs

_HEAD_CHUNK_ROWS = 2048


def _causal_lm(model):
    """The underlying *ForCausalLM of a plain or PEFT-wrapped model (LoRA layers are injected in place)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def decoder_of(model):
    """The transformer body (embeddings + blocks + final norm) under the LM head."""
    lm = _causal_lm(model)
    return getattr(lm, lm.base_model_prefix)


def decoder_hidden_states(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The decoder's last hidden states over ``batch`` (padded or packed rows), and the batch they line up with:
    ``batch`` itself, or with FlashAttention a packed batch flattened into one sequence (`flatten_packed`)."""
    lm = _causal_lm(model)
    if "position_ids" in batch and lm.config._attn_implementation == "flash_attention_2":
        # Packed rows as one variable-length sequence, padding dropped: FlashAttention's varlen kernel keeps the
        # rows apart by their boundaries, so no mask exists at all (`tunesmith.predict.model_inputs`).
        batch = flatten_packed(batch)
        attention_inputs = varlen_attention_inputs(batch["position_ids"])
    elif "position_ids" in batch:
        # Packed rows: with positions alone (no 2D mask), transformers finds the rows where positions restart
        # and builds the block-diagonal causal mask for sdpa and eager itself (`find_packed_sequence_indices`).
        attention_inputs = {"position_ids": batch["position_ids"]}
    elif _right_padded(batch["attention_mask"]):
        # Causal attention alone is exact here: a real token only sees earlier positions, all real, and the pad
        # positions after it carry no loss. SDPA then takes its causal path (no mask built, upper triangle
        # skipped).
        attention_inputs = {}
    else:
        attention_inputs = {"attention_mask": batch["attention_mask"]}
    hidden = decoder_of(model)(input_ids=batch["input_ids"], use_cache=False, **attention_inputs).last_hidden_state
    return hidden, batch


def supervised_loss_sum(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Sum of token cross-entropies over supervised positions, and how many there are."""
    lm = _causal_lm(model)
    hidden, batch = decoder_hidden_states(model, batch)
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE_INDEX
    selected = hidden[:, :-1][keep]
    wanted = targets[keep]
    head = lm.get_output_embeddings()
    # Gemma 2 (and any model with this setting) squashes its logits, cap * tanh(logits / cap), before the softmax;
    # the fused head below computes plain logits, so those models take the chunked path with the cap applied.
    softcap = getattr(lm.config, "final_logit_softcapping", None)
    if (torch.is_grad_enabled() and (selected.requires_grad or head.weight.requires_grad) and head.bias is None
            and softcap is None):
        return _LinearCrossEntropySum.apply(selected, head.weight, wanted), int(wanted.numel())
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, selected.shape[0], _HEAD_CHUNK_ROWS):
        logits = head(selected[start : start + _HEAD_CHUNK_ROWS]).float()
        if softcap is not None:
            logits = softcap * torch.tanh(logits / softcap)
        total = total + F.cross_entropy(logits, wanted[start : start + _HEAD_CHUNK_ROWS], reduction="sum")
    return total, int(wanted.numel())


class SupervisedLoss(torch.nn.Module):
    """A model whose forward is `supervised_loss_sum`: what accelerate wraps for training.

    Why a module: DDP synchronizes gradients, and FSDP / DeepSpeed gather sharded weights, from hooks on the
    *wrapped module's forward*; the loss calls the decoder and the head directly, so it must run inside that
    forward, not beside it.
    """

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, **batch: torch.Tensor) -> tuple[torch.Tensor, int]:
        return supervised_loss_sum(self.model, batch)


def _right_padded(attention_mask: torch.Tensor) -> bool:
    """Whether every row is real tokens followed only by padding."""
    return bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all())


class _LinearCrossEntropySum(torch.autograd.Function):
    """``sum(cross_entropy(hidden @ weight.T, targets))`` whose gradients are computed during the forward pass.

    Why by hand: autograd would keep each chunk's [rows, vocab] logits and log-softmax for the backward pass
    (~400 MB for 700 supervised tokens of a 49k vocabulary, the largest single allocation of a SmolLM2 LoRA
    step). The gradient of cross-entropy is ``softmax - one_hot``, known as soon as the logits are, so each
    chunk turns its logits into that gradient in place and keeps only ``[rows, width]`` (and the head's weight
    gradient when it is trained). The same idea as Liger's fused linear cross-entropy, in plain torch.
    """

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros_like(weight, dtype=torch.float32) if weight.requires_grad else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, hidden.shape[0], _HEAD_CHUNK_ROWS):
            rows = hidden[start : start + _HEAD_CHUNK_ROWS]
            wanted = targets[start : start + _HEAD_CHUNK_ROWS]
            logits = (rows @ weight.t()).float()
            log_normalizer = torch.logsumexp(logits, dim=1)
            picked = logits.gather(1, wanted[:, None]).squeeze(1)
            total += (log_normalizer - picked).sum()
            grad_logits = logits.sub_(log_normalizer[:, None]).exp_()  # softmax, in place
            grad_logits[torch.arange(len(wanted), device=wanted.device), wanted] -= 1.0
            grad_logits = grad_logits.to(weight.dtype)
            grad_hidden[start : start + _HEAD_CHUNK_ROWS] = grad_logits @ weight
            if grad_weight is not None:
                if weight.dtype == torch.float32:
                    grad_weight.addmm_(grad_logits.t(), rows)
                else:  # bf16/fp16: the product at the matrix units' half-precision rate, summed over chunks in fp32
                    grad_weight.add_(grad_logits.t() @ rows)
        ctx.save_for_backward(grad_hidden, grad_weight if grad_weight is not None else torch.empty(0))
        ctx.has_weight_grad = grad_weight is not None
        ctx.weight_dtype = weight.dtype
        return total

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        # Scaled in fp32, rounded once: in bf16 the scale itself (1 / supervised tokens) would round first.
        hidden_grad = (grad_hidden.float() * grad_output).to(grad_hidden.dtype)
        weight_grad = (grad_weight * grad_output).to(ctx.weight_dtype) if ctx.has_weight_grad else None
        return hidden_grad, weight_grad, None


@torch.inference_mode()
def mean_supervised_loss(model, rows, batch_size: int, pad_token_id: int) -> tuple[float, int]:
    """Token-weighted mean loss over ``rows`` (TokenizedExample) and the number of supervised tokens.

    ``model`` is a causal LM or a (wrapped) `SupervisedLoss`. Token-weighted, not a mean of batch means: every
    supervised token counts once, whatever its batch. In a job of several processes every process must call
    it: each scores its `distributed.shard` of the rows and the sums are added up.
    """
    # DDP and DeepSpeed wrap the module (`.module`); FSDP2 changes its class in place (a subclass).
    computes_loss = isinstance(getattr(model, "module", model), SupervisedLoss)
    loss_module = model if computes_loss else SupervisedLoss(model)
    was_training = loss_module.training
    loss_module.eval()
    device = next(loss_module.parameters()).device
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].input_ids))  # less padding
    mine = distributed.shard(order)
    total, count = 0.0, 0
    for start in range(0, len(mine), batch_size):
        batch = collate([rows[i] for i in mine[start : start + batch_size]], pad_token_id)
        loss_sum, n = loss_module(**{k: v.to(device) for k, v in batch.items()})
        total += float(loss_sum)
        count += n
    loss_module.train(was_training)
    total, count = distributed.all_reduce_sum([total, count])
    return (total / count if count else float("nan")), int(count)
