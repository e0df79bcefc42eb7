"""A faster forward for peft's LoRA linear layers, same function.

Why: peft computes ``base(x) + lora_B(lora_A(x)) * scaling`` as three separate passes over the full
``[tokens, out_features]`` output: the product, the scaling multiply and the add each read and write it. On a
CPU those memory-bound passes measured ~7% of a SmolLM2 LoRA training step. ``torch.addmm`` folds the scaling
and the add into the B matmul (``out = base + scaling * (x A^T) B^T``), so the output is touched once; forward
and backward are the same linear algebra (results agree to float rounding, ~1e-7 relative).

Over a bfloat16/float16 base, peft keeps the adapter weights in fp32 and runs the adapter on an fp32 copy of the
activations, which it also keeps for the backward pass: a second, double-size copy of every adapted layer's
input. The fused forward runs the adapter in the activations' dtype instead, with its weights cast per call, as
`torch.autocast` would: the weights and their gradients stay fp32, the results agree to bf16 rounding.

Only the plain case is fused: one active adapter, no dropout, no LoRA variant (DoRA...), no extra forward
arguments, adapter neither disabled nor merged. Anything else runs peft's own forward, checked on every call,
so `disable_adapter()`, merging and saving behave exactly as in peft. peft is imported where it is used (start-up
time, see `tunesmith.models.loading`).
"""

from __future__ import annotations

import types

import torch
from torch import nn


def fuse_lora_epilogues(model: nn.Module) -> int:
    """Give every plain LoRA linear layer of ``model`` the fused forward; returns how many were changed."""
    from peft.tuners.lora.layer import Linear as LoraLinear

    changed = 0
    for module in model.modules():
        if isinstance(module, LoraLinear) and "forward" not in module.__dict__:
            module._peft_forward = module.forward
            module.forward = types.MethodType(_fused_forward, module)
            changed += 1
    return changed


def _plain_adapter(layer):
    """``(A, B, scaling)`` when the fused path applies to this call's configuration, else None."""
    if layer.disable_adapters or layer.merged or len(layer.active_adapters) != 1:
        return None
    name = layer.active_adapters[0]
    if name not in layer.lora_A or name in getattr(layer, "lora_variant", {}):
        return None
    if not isinstance(layer.lora_dropout[name], nn.Identity):
        return None
    lora_a, lora_b = layer.lora_A[name], layer.lora_B[name]
    if lora_a.bias is not None or lora_b.bias is not None:
        return None
    return lora_a.weight, lora_b.weight, layer.scaling[name]


def _fused_forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    adapter = None if (args or kwargs) else _plain_adapter(self)
    if adapter is None or not _fusable_dtypes(x.dtype, adapter[0].dtype):
        return self._peft_forward(x, *args, **kwargs)
    weight_a, weight_b, scaling = adapter
    weight_a, weight_b = weight_a.to(x.dtype), weight_b.to(x.dtype)  # no-ops unless fp32 adapters, half x
    result = self.base_layer(x)
    low_rank = nn.functional.linear(x, weight_a)
    flat = torch.addmm(result.reshape(-1, result.shape[-1]), low_rank.reshape(-1, low_rank.shape[-1]),
                       weight_b.t(), alpha=scaling)
    return flat.view(result.shape)


def _fusable_dtypes(activations: torch.dtype, adapter: torch.dtype) -> bool:
    """The same dtype, or half-precision activations with fp32 adapter weights (see the module docstring)."""
    return activations == adapter or (activations in (torch.bfloat16, torch.float16) and adapter == torch.float32)
