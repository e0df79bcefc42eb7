"""Dense retrieval: sentence-transformers embeddings, normalized, in a FAISS inner-product index (inner product of
unit vectors is cosine similarity). `Embedder` is the interface the index uses, so a test can inject vectors it
knows; `SentenceEmbedder` is the real one. sentence-transformers and faiss are imported where they are used
(start-up time of commands that never embed)."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Protocol

import numpy as np

from tunesmith.models.fingerprint import weights_sha256
from tunesmith.models.provision import resolve_embedding_model


class Embedder(Protocol):
    identity: str
    """What the index cache keys on: a different identity must mean different vectors."""

    def encode(self, texts: list[str]) -> np.ndarray:
        """One unit-length float32 row per text."""
        ...


class SentenceEmbedder:
    """A sentence-transformers model from a local folder (`resolve_embedding_model`), on the CPU unless a GPU is
    there, weights from safetensors only, no remote code. ``key`` is the setting that named it, for its errors."""

    def __init__(self, name: str, batch_size: int = 64, key: str = "rag.embedding_model"):
        from sentence_transformers import SentenceTransformer

        folder = resolve_embedding_model(name, key)
        self.identity = f"sentence-transformers:{folder_fingerprint(folder)}"
        self.batch_size = batch_size
        self._model = SentenceTransformer(str(folder), local_files_only=True, trust_remote_code=False,
                                          model_kwargs={"use_safetensors": True})

    def encode(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(texts, batch_size=self.batch_size, normalize_embeddings=True,
                                     convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


@functools.cache
def folder_fingerprint(folder: Path) -> str:
    """sha256 over a sentence-transformers folder's files (weights, pooling, tokenizer, settings): the same
    fingerprint, the same vectors. Weights hashes are remembered (`weights_sha256`), the small files read."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder)}\0".encode())
        digest.update(weights_sha256(path).encode() if path.suffix == ".safetensors" else path.read_bytes())
    return digest.hexdigest()[:32]


def build_faiss(vectors: np.ndarray):
    import faiss

    index = faiss.IndexFlatIP(vectors.shape[1])  # exact search: collections here are thousands of passages
    index.add(vectors)
    return index


def save_faiss(index, path: Path) -> None:
    import faiss

    faiss.write_index(index, str(path))


def load_faiss(path: Path):
    import faiss

    return faiss.read_index(str(path))


def search_faiss(index, query_vectors: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """``(scores, passage indices)``, each ``queries x depth``, best first."""
    return index.search(query_vectors, min(depth, index.ntotal))
