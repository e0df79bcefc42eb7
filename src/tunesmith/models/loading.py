"""Load tokenizers and models (base, tuned) and wrap a model for LoRA training."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import torch

from tunesmith.config.schema import LoraConfig, ModelConfig
from tunesmith.models.provision import resolve_model


def pick_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def pick_dtype(requested: str, device: torch.device) -> torch.dtype:
    """fp32 on CPU unless asked otherwise (bf16 autocast measured ~30x slower on our CPUs); bf16 on GPUs with it."""
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

    from tunesmith.data.templates import apply_chat_template_choice

    folder = resolve_model(model_config.name)
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=model_config.trust_remote_code)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return apply_chat_template_choice(tokenizer, model_config.chat_template)


def load_base_model(model_config: ModelConfig, device: torch.device | None = None):
    """The pretrained model and its tokenizer, in eval mode on ``device`` (default: GPU if any, else CPU)."""
    from transformers import AutoModelForCausalLM

    device = device or pick_device()
    folder = resolve_model(model_config.name)
    model = AutoModelForCausalLM.from_pretrained(
        folder, dtype=pick_dtype(model_config.dtype, device), trust_remote_code=model_config.trust_remote_code,
        use_safetensors=True,
    )
    model.config.use_cache = False
    return model.to(device).eval(), load_tokenizer(model_config)


def load_tuned_model(run_dir, device: torch.device | None = None, merge: bool = False):
    """The fine-tuned model of a run (its best checkpoint) and the tokenizer, in eval mode.

    ``merge=True`` folds a LoRA adapter into the base weights: the same function, but inference no longer
    pays for the adapter's extra matmuls (measured ~15% of a forward pass on SmolLM2 on CPU).
    """
    from transformers import AutoModelForCausalLM

    from tunesmith.run_dir import RunDir

    run = RunDir(run_dir)
    config = run.config()
    best = run.best_weights()
    device = device or pick_device()
    if config.method == "lora":
        from peft import PeftModel

        base, tokenizer = load_base_model(config.model, device)
        model = PeftModel.from_pretrained(base, best)
        if merge:
            model = model.merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(
            best, dtype=pick_dtype(config.model.dtype, device), use_safetensors=True,
            trust_remote_code=config.model.trust_remote_code,
        ).to(device)
        model.config.use_cache = False
        tokenizer = load_tokenizer(config.model)
    return model.eval(), tokenizer


def add_lora(model, lora: LoraConfig, fuse: bool = True):
    """Wrap ``model`` with trainable LoRA adapters (peft); the base weights stay frozen. ``fuse`` gives the
    adapted layers a faster forward that computes the same function (`tunesmith.models.lora_fused`)."""
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model

    targets = "all-linear" if lora.target_modules == ["all-linear"] else list(lora.target_modules)
    peft_config = PeftLoraConfig(
        r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets, task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, peft_config)
    if fuse:
        from tunesmith.models.lora_fused import fuse_lora_epilogues

        fuse_lora_epilogues(model)
    return model


def model_folder(model_config: ModelConfig) -> Path:
    return resolve_model(model_config.name)
