"""The model's shape without its weights: parameter counts (all, and what `method` trains) from the model's
`config.json`, built on PyTorch's `meta` device, where a tensor has a shape and no storage. So a plan knows the
size of a 7B model in a second and allocates nothing; `tunesmith plan --no-probe` loads no model."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from tunesmith.config.schema import RunConfig
from tunesmith.config.vocabulary import uses_adapter
from tunesmith.errors import ModelError
from tunesmith.models import model_folder, pick_dtype
from tunesmith.text import shorten

QLORA_BYTES_PER_WEIGHT = 0.5 + 2 / 64 + 4 / (64 * 256)
"""NF4 with double quantization: 4 bits a weight, one 8-bit scale per 64 weights, one fp32 scale per 256 scales."""


@dataclass(frozen=True)
class ModelShape:
    params: int
    """Every parameter of the model (tied embeddings counted once)."""
    linear_params: int
    """Parameters of the decoder's linear layers (what QLoRA quantizes)."""
    trainable: int
    """Parameters `method` trains: every one (`full`), or the adapters' (LoRA r x (in + out) per target layer)."""
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    weight_bytes: float
    """Bytes per weight as trained (the dtype `model.dtype` picks on this device; NF4 for qlora)."""
    trainable_bytes: int
    """Bytes per trainable parameter, its gradient and each of AdamW's two moments (peft keeps adapters in fp32)."""

    def to_json(self) -> dict:
        return asdict(self)


def model_shape(config: RunConfig, device: torch.device) -> ModelShape:
    """The shape of `model.name` as `config.method` trains it on ``device``; reads `config.json` only."""
    from transformers import AutoConfig, AutoModelForCausalLM

    folder = model_folder(config.model)
    try:
        hf_config = AutoConfig.from_pretrained(folder, trust_remote_code=config.model.trust_remote_code)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(hf_config, trust_remote_code=config.model.trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot read the model's config in {folder}: {shorten(str(exc), 200)}",
                         "model.name must be a model folder with a config.json, or a Hub id") from None
    params = sum(p.numel() for p in model.parameters())
    decoder_linear = [(name, module) for name, module in model.named_modules()
                      if isinstance(module, torch.nn.Linear) and module is not model.get_output_embeddings()]
    linear_params = sum(module.weight.numel() for _, module in decoder_linear)
    dtype = pick_dtype(config.model.dtype, device)
    dtype_bytes = torch.finfo(dtype).bits // 8
    if uses_adapter(config.method):
        targets = config.lora.target_modules
        chosen = [module for name, module in decoder_linear
                  if targets == ["all-linear"] or any(name == t or name.endswith("." + t) for t in targets)]
        trainable = sum(config.lora.r * (m.in_features + m.out_features) for m in chosen)
        if config.method == "dora":
            trainable += sum(m.out_features for m in chosen)  # the magnitude vector
        trainable_bytes = 4
    else:
        trainable, trainable_bytes = params, dtype_bytes
    if config.method == "qlora":
        # The quantized linear weights, the rest upcast to fp32 by peft's `prepare_model_for_kbit_training`.
        weight_bytes = (linear_params * QLORA_BYTES_PER_WEIGHT + (params - linear_params) * 4) / params
    else:
        weight_bytes = float(dtype_bytes)
    text = hf_config.get_text_config() if hasattr(hf_config, "get_text_config") else hf_config
    return ModelShape(
        params=params, linear_params=linear_params, trainable=trainable,
        layers=int(getattr(text, "num_hidden_layers", 0)), hidden=int(getattr(text, "hidden_size", 0)),
        intermediate=int(getattr(text, "intermediate_size", 0) or 4 * getattr(text, "hidden_size", 0)),
        vocab=int(getattr(text, "vocab_size", 0)), weight_bytes=weight_bytes, trainable_bytes=trainable_bytes,
    )
