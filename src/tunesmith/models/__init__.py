"""Stage 1: pick and provision the pretrained model (offline), load it, and add adapters."""

from tunesmith.models.loading import (
    add_lora,
    load_base_model,
    load_tokenizer,
    load_tuned_model,
    model_folder,
    pick_device,
    pick_dtype,
)
from tunesmith.models.provision import cache_dir, resolve_model

__all__ = [
    "add_lora", "cache_dir", "load_base_model", "load_tokenizer", "load_tuned_model", "model_folder",
    "pick_device", "pick_dtype", "resolve_model",
]
