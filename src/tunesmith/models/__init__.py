"""The pretrained model. Find it (the embedded default, a local folder or `.gguf` file, or a Hub id),
load it and its tokenizer (with the chosen chat template), and prepare it for training by method (LoRA, DoRA,
QLoRA, full)."""

from tunesmith.models.loading import (
    add_lora,
    check_method_available,
    load_base_model,
    load_model_folder,
    load_tokenizer,
    load_training_model,
    load_tuned_model,
    model_folder,
    pick_dtype,
    prepare_for_training,
)
from tunesmith.models.provision import DEFAULT_MODEL_HUB_ID, cache_dir, portable_name, resolve_model, source_gguf
from tunesmith.models.templates import stop_token_ids

__all__ = [
    "DEFAULT_MODEL_HUB_ID", "add_lora", "cache_dir", "check_method_available", "load_base_model",
    "load_model_folder", "load_tokenizer", "load_training_model", "load_tuned_model", "model_folder",
    "pick_dtype", "portable_name", "prepare_for_training", "resolve_model", "source_gguf", "stop_token_ids",
]
