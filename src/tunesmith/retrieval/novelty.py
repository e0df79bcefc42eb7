"""Novelty of an input: how far it lies from everything the model trained on. The score is one minus the cosine
similarity of the input's embedding to the nearest training input's: 0 for an input seen in training, near 1 for
one unrelated to all of them (it can reach 2 for an opposite vector, which sentence embeddings rarely give).

Nearest-neighbour distance in a sentence-embedding space rather than word overlap: a held-out SMS shares few word
3-grams with any training SMS, but its embedding lies close to many of them, while a French recipe lies far from
all of them. On its own a score means little; `tunesmith.results.reference` records the scores of held-out rows
the model never trained on, and the monitor compares live scores with those.

The index is saved in the run folder (``novelty/``: ``index.faiss`` and ``novelty.json``, written together under a
staging name, `tunesmith.atomic.staged_folder`) with the identity of the embedder that made it; loading it with a
different embedder is an error, since its scores would not compare with the reference's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tunesmith.atomic import recover_folder, staged_folder
from tunesmith.errors import RunError
from tunesmith.json_files import read_json, write_json
from tunesmith.retrieval.dense import Embedder, build_faiss, load_faiss, save_faiss, search_faiss

EMBEDDING_SETTING = "monitor.embedding_model"
"""The setting that names the embedding model novelty is measured with, by evaluation and by the server alike."""
INDEX_FILE = "index.faiss"
META_FILE = "novelty.json"


class NoveltyIndex:
    """The embeddings of a run's training inputs, searched for each new input's nearest one."""

    def __init__(self, index, embedder: Embedder):
        self.index, self.embedder = index, embedder

    @classmethod
    def build(cls, inputs: list[str], embedder: Embedder) -> NoveltyIndex:
        if not inputs:
            raise ValueError("a novelty index needs at least one training input")
        return cls(build_faiss(embedder.encode(list(inputs))), embedder)

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def scores(self, texts: list[str]) -> list[float]:
        """The novelty of each of ``texts`` (see the module docstring), in order."""
        if not texts:
            return []
        similarities, _ = search_faiss(self.index, self.embedder.encode(list(texts)), 1)
        return [float(1.0 - row[0]) for row in np.asarray(similarities, dtype=np.float64)]

    def save(self, folder: str | Path) -> None:
        """Write ``folder`` whole or not at all (an existing one is replaced)."""
        with staged_folder(Path(folder)) as staging:
            save_faiss(self.index, staging / INDEX_FILE)
            write_json(staging / META_FILE, {"embedder": self.embedder.identity, "inputs": self.size})

    @classmethod
    def load(cls, folder: str | Path, embedder: Embedder) -> NoveltyIndex:
        """The index saved in ``folder``; a `RunError` when it is missing or was made by another embedder."""
        folder = Path(folder)
        recover_folder(folder)
        meta = read_json(folder / META_FILE)
        if meta is None or not (folder / INDEX_FILE).is_file():
            raise RunError(f"{folder} holds no novelty index", "evaluate the run again (`tunesmith eval RUN`)")
        if meta.get("embedder") != embedder.identity:
            raise RunError(f"the novelty index in {folder} was made by another embedding model "
                           f"({meta.get('embedder')}, not {embedder.identity})",
                           "set monitor.embedding_model back, or evaluate the run again")
        return cls(load_faiss(folder / INDEX_FILE), embedder)
