"""Content fingerprints of a model folder and of a tokenizer: the model side of cache keys (tokenized datasets in
`tunesmith.data.cache`, base-model evaluations in `tunesmith.evaluate.cache`, the latter through
`tunesmith.models.init_from.base_fingerprint`, which adds the weights of a `model.init_from` run).

Two fingerprints are equal only when what decides the outputs is: the weights' bytes, the config files, and the
tokenizer with its chat template. Paths and timestamps are not part of them, so a copied model folder matches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from tunesmith.errors import RunError
from tunesmith.json_files import read_json, write_json
from tunesmith.models.provision import cache_dir

log = logging.getLogger("tunesmith")

WEIGHT_HASHES_FILE = "weights-sha256.json"
MODEL_CONFIG_FILES = ("config.json", "generation_config.json", "adapter_config.json")
"""Files besides the weights that change a model's outputs (architecture settings; generation defaults that
`generate` reads; an adapter's rank, scale and targets). Tokenizer files are covered by `tokenizer_fingerprint`."""
_HASH_CHUNK = 1 << 20


def model_fingerprint(folder: Path) -> str:
    """sha256 of a Hugging Face model folder's weights (`weights_sha256` of each .safetensors file), its config
    files and any Python code in it (run with `model.trust_remote_code`)."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.safetensors")):
        digest.update(f"{path.name}\0{weights_sha256(path)}\0".encode())
    for path in sorted([folder / name for name in MODEL_CONFIG_FILES] + list(folder.glob("*.py"))):
        if path.is_file():
            digest.update(f"{path.name}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def weights_sha256(path: Path) -> str:
    """sha256 of a weights file's bytes, computed once and then remembered (in the tunesmith cache) for as long as
    the file's inode, size, mtime and ctime stay the same.

    Why the whole content: size and mtime cannot tell two models apart (a model fine-tuned and saved by the same
    code has the same size as its base, and a copy gets a new mtime), and a safetensors header (tensor names,
    shapes, offsets) is the same for every model of one architecture. Hashing reads the file once per copy;
    afterwards a run only stats it. Why ctime and the inode besides mtime: neither can be set back, so a file
    rewritten in place or replaced, even with its old mtime restored (`cp -p`, `touch -d`), is hashed again.
    """
    path = path.resolve()
    stat = path.stat()
    identity = [stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]
    remembered = _remembered_hashes()
    entry = remembered.get(str(path))
    if isinstance(entry, dict) and entry.get("identity") == identity and isinstance(entry.get("sha256"), str):
        return entry["sha256"]
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    sha256 = digest.hexdigest()
    # Forget files that are gone, so the memo does not grow with every deleted run folder.
    kept = {name: value for name, value in remembered.items() if os.path.exists(name)}
    kept[str(path)] = {"identity": identity, "sha256": sha256}
    write_json(cache_dir() / WEIGHT_HASHES_FILE, kept)
    return sha256


def _remembered_hashes() -> dict:
    memo = cache_dir() / WEIGHT_HASHES_FILE
    try:
        value = read_json(memo)
    except (RunError, OSError, UnicodeDecodeError) as exc:
        log.warning("ignoring the damaged weight-hash memo %s (%s); hashing the weights again", memo, exc)
        return {}
    return value if isinstance(value, dict) else {}


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of what decides token ids: the Rust tokenizer (vocab, merges, normalizer, added tokens), the
    special tokens and the chat template."""
    digest = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        digest.update(backend.to_str().encode())
    else:  # a slow (Python) tokenizer: its vocabulary is what we can see
        digest.update(json.dumps(sorted(tokenizer.get_vocab().items())).encode())
    digest.update(type(tokenizer).__name__.encode())
    digest.update(json.dumps(tokenizer.special_tokens_map, sort_keys=True, default=str).encode())
    digest.update(json.dumps([tokenizer.eos_token_id, tokenizer.pad_token_id]).encode())
    digest.update((tokenizer.chat_template or "").encode())
    return digest.hexdigest()
