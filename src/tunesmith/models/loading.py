"""Load tokenizers and models (base, tuned, any saved model folder) and wrap a model for LoRA training.

Every model folder is loaded by `load_model_folder`: safetensors only, `trust_remote_code` as configured, the
dtype chosen once (`pick_dtype`), the KV cache off (training does not use it; generation turns it back on per
call). transformers and peft are imported inside the functions that use them: together they take several
seconds to import, which commands that never load a model (`config`, `report`, a data check that fails on the
file) should not pay.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import torch
from safetensors import SafetensorError

from tunesmith.config.schema import LoraConfig, ModelConfig
from tunesmith.errors import ConfigError, ModelError
from tunesmith.models.kernels import apply_liger, attention_implementation, check_liger
from tunesmith.models.lora_fused import fuse_lora_epilogues
from tunesmith.models.provision import resolve_model
from tunesmith.models.templates import apply_chat_template_choice
from tunesmith.run_dir import RunDir
from tunesmith.text import shorten


def pick_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def pick_dtype(requested: str, device: torch.device) -> torch.dtype:
    """The configured dtype; for `auto`, bf16 on GPUs that support it, else fp32 (the CPU trade-off is measured
    in BENCHMARKS.md, "CPU precision")."""
    if requested != "auto":
        return getattr(torch, requested)
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def matmul_seconds(size: int = 1024, dtype: torch.dtype = torch.float32, repeats: int = 3) -> float:
    """Median time of one ``size``x``size`` matmul on the CPU, after a warm-up; inputs come from a private
    generator, so the global RNG (seeded for training) is never touched."""
    own_rng = torch.Generator().manual_seed(0)
    a, b = (torch.randn(size, size, generator=own_rng).to(dtype) for _ in range(2))
    a @ b
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        runs.append(time.perf_counter() - start)
    return sorted(runs)[len(runs) // 2]


@functools.cache
def cpu_bf16_speedup() -> float:
    """fp32 time / bf16 time of a 1024x1024 matmul on this CPU: logged so a user can see whether
    `model.dtype: bfloat16` would pay off here."""
    return matmul_seconds(dtype=torch.float32) / matmul_seconds(dtype=torch.bfloat16)


def load_tokenizer(model_config: ModelConfig):
    """The model's tokenizer with the chat template `model.chat_template` chooses, so training, evaluation,
    chat and export (which saves this tokenizer) all render conversations the same way."""
    from transformers import AutoTokenizer

    folder = resolve_model(model_config.name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=model_config.trust_remote_code)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ModelError(f"{folder} has no usable tokenizer: {shorten(str(exc), 200)}",
                         "a model folder needs its tokenizer files (tokenizer.json or the files of a slow "
                         "tokenizer), as save_pretrained writes them") from None
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return apply_chat_template_choice(tokenizer, model_config.chat_template)


def load_model_folder(folder: str | Path, model_config: ModelConfig, device: torch.device | None = None,
                      dtype: torch.dtype | str | None = None):
    """The causal LM saved in ``folder``, in eval mode on ``device`` (default: GPU if any, else CPU), with the
    attention implementation `model.attention` chooses (`tunesmith.models.kernels`).

    ``dtype`` defaults to `pick_dtype` of ``model.dtype``; ``"auto"`` keeps the dtype the weights were saved in.
    """
    from transformers import AutoModelForCausalLM

    device = device or pick_device()
    dtype = dtype or pick_dtype(model_config.dtype, device)
    attention = attention_implementation(model_config.attention, device, dtype)  # before the load: errors early
    try:
        model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=dtype, use_safetensors=True, attn_implementation=attention,
            trust_remote_code=model_config.trust_remote_code,
        )
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
        raise ModelError(f"cannot load the model in {folder}: {shorten(str(exc), 200)}",
                         "its weights are damaged or incomplete (an empty or cut-off .safetensors file?); save "
                         "or copy the model again") from None
    model.config.use_cache = False
    return model.to(device).eval()


def load_base_model(model_config: ModelConfig, device: torch.device | None = None, liger: bool = False):
    """The pretrained model and its tokenizer, in eval mode on ``device`` (default: GPU if any, else CPU).

    ``liger`` (`train.liger`) swaps Liger's fused kernels into the model; whether they can run here is checked
    before the weights load."""
    device = device or pick_device()
    folder = resolve_model(model_config.name)
    if liger:
        check_liger(device, folder)
    model = load_model_folder(folder, model_config, device)
    if liger:
        apply_liger(model)
    return model, load_tokenizer(model_config)


def load_tuned_model(run_dir: str | Path, device: torch.device | None = None, merge: bool = False):
    """The fine-tuned model of a run (its best checkpoint) and the tokenizer, in eval mode.

    ``merge=True`` folds a LoRA adapter into the base weights: the same function, but inference no longer
    pays for the adapter's extra matmuls.
    """
    run = RunDir(run_dir)
    config = run.config()
    best = run.best_weights()
    if config.method != "lora":
        return load_model_folder(best, config.model, device), load_tokenizer(config.model)
    base, tokenizer = load_base_model(config.model, device)
    model = load_adapter(base, best)
    if merge:
        model = model.merge_and_unload()
    return model.eval(), tokenizer


def load_adapter(base, folder: Path):
    """``base`` with the PEFT adapter saved in ``folder``; a damaged adapter is a one-line `ModelError`."""
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(base, folder)
    except (OSError, ValueError, RuntimeError, KeyError, SafetensorError) as exc:
        raise ModelError(f"cannot load the LoRA adapter in {folder}: {shorten(str(exc), 200)}",
                         "the saved weights are damaged; resume training (--resume) to write them again") from None


def add_lora(model, lora: LoraConfig, fuse: bool = True):
    """Wrap ``model`` with trainable LoRA adapters (peft); the base weights stay frozen. ``fuse`` gives the
    adapted layers a faster forward that computes the same function (`tunesmith.models.lora_fused`)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    targets = "all-linear" if lora.target_modules == ["all-linear"] else list(lora.target_modules)
    if targets != "all-linear":
        check_target_modules(model, targets)
    peft_config = PeftLoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets, task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, peft_config)
    if fuse:
        fuse_lora_epilogues(model)
    return model


def check_target_modules(model, targets: list[str]) -> None:
    """Every name of `lora.target_modules` must match a linear layer, as peft matches them (the layer's name or
    its last part): peft would fail on all-wrong names with a traceback and skip a single wrong one silently."""
    linear = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)]
    unmatched = [target for target in targets
                 if not any(name == target or name.endswith("." + target) for name in linear)]
    if unmatched:
        kinds = sorted({name.rsplit(".", 1)[-1] for name in linear})
        raise ConfigError("lora.target_modules", f"{', '.join(map(repr, unmatched))} matches no linear layer of "
                          "the model", f"the model's linear layers are: {', '.join(kinds)} (or use all-linear)")


def model_folder(model_config: ModelConfig) -> Path:
    return resolve_model(model_config.name)
