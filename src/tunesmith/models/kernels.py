"""Which kernels a model runs with: the attention implementation (`model.attention`) and Liger's fused Triton
kernels (`train.liger`).

Both settings are checked before a model's weights load, so one that cannot run on this machine is a one-line
`ConfigError` naming its key instead of a traceback after the load. The optional packages (flash_attn,
liger_kernel) are imported only here, and only when a setting asks for them: importing them costs seconds and
needs CUDA libraries that a CPU machine lacks.
"""

from __future__ import annotations

import functools
import importlib
import json
from pathlib import Path

import torch

from tunesmith.errors import ConfigError

HALF_DTYPES = (torch.bfloat16, torch.float16)
"""The dtypes FlashAttention computes in."""


@functools.cache
def import_problem(module: str) -> str | None:
    """Why ``module`` does not import here (not installed, or built for another torch/CUDA), or None if it does."""
    try:
        importlib.import_module(module)
    except ImportError as exc:  # an extension built against another torch fails here too ("undefined symbol")
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return None


def attention_implementation(requested: str, device: torch.device, dtype: torch.dtype | str) -> str | None:
    """transformers' ``attn_implementation`` for `model.attention`: `auto` resolved for this device and dtype,
    `flash_attention_2` checked (a `ConfigError` naming the key where it cannot run). ``dtype`` "auto" (the
    weights' saved dtype, unknown before they load) never resolves `auto` to FlashAttention. Without
    FlashAttention, `auto` is None: transformers' own choice for the architecture (sdpa where the model supports
    it; Gemma 2, for one, supports only eager)."""
    if requested == "auto":
        return "flash_attention_2" if _flash_attention_problem(device, dtype) is None else None
    if requested == "flash_attention_2":
        problem = _flash_attention_problem(device, dtype)
        if problem is not None:
            raise ConfigError("model.attention", f"flash_attention_2 {problem}",
                              "set model.attention: auto (FlashAttention where it can run, else sdpa) or sdpa")
    return requested


def _flash_attention_problem(device: torch.device, dtype: torch.dtype | str) -> str | None:
    if device.type != "cuda":
        return f"needs a CUDA GPU, and this model is loaded on the {device.type}"
    if dtype not in HALF_DTYPES:
        return f"computes in bfloat16 or float16 only, and the model's dtype is {str(dtype).replace('torch.', '')}"
    problem = import_problem("flash_attn")
    if problem is not None:
        return f"needs the flash_attn package, which does not import here ({problem}); pip install flash-attn"
    return None


def check_liger(device: torch.device, model_folder: Path) -> None:
    """`train.liger` can run here: a CUDA device, liger_kernel importable, and kernels for this model type.
    Reads only the folder's config.json, so it runs before the weights load."""
    if device.type != "cuda":
        raise ConfigError("train.liger", f"Liger's kernels are Triton GPU kernels, and this run is on the "
                                         f"{device.type}", "set train.liger: false")
    problem = import_problem("liger_kernel.transformers")
    if problem is not None:
        raise ConfigError("train.liger", f"the liger-kernel package does not import here ({problem})",
                          "pip install liger-kernel, or set train.liger: false")
    from liger_kernel.transformers.monkey_patch import MODEL_TYPE_TO_APPLY_LIGER_FN

    model_type = json.loads((model_folder / "config.json").read_text(encoding="utf-8")).get("model_type")
    if model_type not in MODEL_TYPE_TO_APPLY_LIGER_FN:
        raise ConfigError("train.liger", f"Liger has no kernels for {model_type!r} models",
                          "set train.liger: false")


def apply_liger(model) -> None:
    """Swap Liger's RMSNorm, rotary embedding and SwiGLU (GeGLU...) kernels into ``model`` in place, before any
    LoRA wrapping. `check_liger` first.

    Not Liger's cross-entropy or fused linear cross-entropy: tunesmith's loss (`tunesmith.predict.loss`) calls the
    decoder body and applies the LM head to the supervised positions only, with its own chunked fused
    cross-entropy. Liger's fused version replaces ``*ForCausalLM.forward``, which tunesmith never calls, and over
    every position it would do more work than the supervised-only head.

    Liger patches the model's transformers module too (its rotary function and layer classes), so models of the
    same type built later in this process get the kernels as well.
    """
    from liger_kernel.transformers import _apply_liger_kernel_to_instance

    # Keywords a model type's function does not take are dropped by Liger (Gemma has geglu, not swiglu).
    _apply_liger_kernel_to_instance(model=model, rope=True, rms_norm=True, swiglu=True, geglu=True,
                                    cross_entropy=False, fused_linear_cross_entropy=False)
