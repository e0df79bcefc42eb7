"""Stage: models. Find the pretrained model on disk, load it and its tokenizer (with the chosen chat template),
and add LoRA adapters."""

from tunesmith.models.loading import (
    add_lora,
    load_base_model,
    load_model_folder,
    load_tokenizer,
    load_tuned_model,
    model_folder,
    pick_device,
    pick_dtype,
)
from tunesmith.models.provision import cache_dir, resolve_model

__all__ = [
    "add_lora", "cache_dir", "load_base_model", "load_model_folder", "load_tokenizer", "load_tuned_model",
    "model_folder", "pick_device", "pick_dtype", "resolve_model",
]
