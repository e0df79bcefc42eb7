"""The retrieval index of `rag.documents`: passages, a BM25 index (`bm25s`) and, for `dense` and `hybrid`, a FAISS
index of their embeddings; `hybrid` merges the two rankings by reciprocal-rank fusion.

Built once into the tunesmith cache (`cache_dir()/retrieval/<key>/`) and read back afterwards. The key is a sha256
over the bytes of every document file, `rag.columns`, the chunking (`chunk_tokens`, `chunk_overlap`, the
tokenizer's fingerprint) and, when dense search is part of it, the embedding model's identity: changing a document
or any of these makes a new entry. An entry is written under a staging name and renamed into place
(`tunesmith.atomic.staged_folder`), as the tokenization cache does, so a killed build never leaves a half entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from rich.progress import Progress

from tunesmith.atomic import recover_folder, staged_folder
from tunesmith.config.rag_section import RagConfig, Retriever
from tunesmith.data.cache import hash_file
from tunesmith.json_files import read_jsonl, write_jsonl
from tunesmith.models.fingerprint import tokenizer_fingerprint
from tunesmith.models.provision import cache_dir
from tunesmith.retrieval.chunking import Passage, chunk_document
from tunesmith.retrieval.dense import Embedder, SentenceEmbedder, build_faiss, load_faiss, save_faiss, search_faiss
from tunesmith.retrieval.documents import document_files, read_documents

log = logging.getLogger("tunesmith")

INDEX_FORMAT_VERSION = 1
"""Raise when what an entry stores changes: old entries then stop matching."""

_EMBED_BATCH = 64
_FUSION_DEPTH = 100
"""Candidates each retriever hands to reciprocal-rank fusion (a passage below this rank adds nothing)."""


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float
    rank: int
    """1 for the best passage."""


def uses_dense(retriever: str) -> bool:
    return retriever in ("dense", "hybrid")


class RetrievalIndex:
    """Passages and their search structures; `search` answers queries with any retriever the index holds."""

    def __init__(self, passages: list[Passage], bm25, faiss_index=None, embedder: Embedder | None = None,
                 rrf_k: int = 60, key: str = ""):
        self.passages = passages
        self.bm25 = bm25
        self.faiss_index = faiss_index
        self.embedder = embedder
        self.rrf_k = rrf_k
        self.key = key

    def search(self, queries: list[str], retriever: Retriever, top_k: int) -> list[list[Hit]]:
        """The ``top_k`` best passages of each query, best first."""
        if retriever == "bm25":
            ranked = self._bm25(queries, top_k)
        elif retriever == "dense":
            ranked = self._dense(queries, top_k)
        else:
            depth = max(top_k, _FUSION_DEPTH)
            ranked = [reciprocal_rank_fusion([[i for i, _ in lexical], [i for i, _ in dense]], self.rrf_k)[:top_k]
                      for lexical, dense in zip(self._bm25(queries, depth), self._dense(queries, depth))]
        return [[Hit(self.passages[index], float(score), rank) for rank, (index, score) in enumerate(row, 1)]
                for row in ranked]

    def _bm25(self, queries: list[str], depth: int) -> list[list[tuple[int, float]]]:
        import bm25s

        depth = min(depth, len(self.passages))
        tokens = bm25s.tokenize(queries, stopwords="en", return_ids=False, show_progress=False)
        indices, scores = self.bm25.retrieve(tokens, k=depth, show_progress=False, n_threads=1)
        # bm25s ranks passages sharing no word with the query too (score 0): they are not found, only listed.
        return [[(int(i), float(s)) for i, s in zip(row_i, row_s) if s > 0] for row_i, row_s in zip(indices, scores)]

    def _dense(self, queries: list[str], depth: int) -> list[list[tuple[int, float]]]:
        if self.faiss_index is None or self.embedder is None:
            raise ValueError("this index was built without dense search (rag.retriever: bm25)")
        scores, indices = search_faiss(self.faiss_index, self.embedder.encode(queries), depth)
        return [[(int(i), float(s)) for i, s in zip(row_i, row_s) if i >= 0] for row_i, row_s in zip(indices, scores)]


def reciprocal_rank_fusion(rankings: list[list[int]], k: int) -> list[tuple[int, float]]:
    """Items of several best-first rankings, ordered by the sum of ``1 / (k + rank)`` (rank 1 is the best) over
    the rankings that hold them (Cormack et al., 2009); ties keep the order items were first seen in."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, item in enumerate(ranking, 1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda pair: -pair[1])


# ---- the cache --------------------------------------------------------------------------------------------------


def index_key(config: RagConfig, tokenizer, embedder: Embedder | None) -> str:
    digest = hashlib.sha256()
    digest.update(f"tunesmith-retrieval-v{INDEX_FORMAT_VERSION}\0".encode())
    settings = config.model_dump(mode="json", include={"columns", "chunk_tokens", "chunk_overlap"})
    digest.update(json.dumps(settings, sort_keys=True).encode())
    digest.update(tokenizer_fingerprint(tokenizer).encode())
    digest.update(f"\0{embedder.identity if embedder is not None else '<no dense>'}\0".encode())
    for path in document_files(config):
        hash_file(digest, path)
    return digest.hexdigest()[:32]


def index_root() -> Path:
    return cache_dir() / "retrieval"


def load_index(config: RagConfig, tokenizer, dense: bool | None = None,
               embedder_factory: Callable[[str], Embedder] = SentenceEmbedder) -> tuple[RetrievalIndex, bool]:
    """``(index, whether it came from the cache)``: the cached entry of these documents and settings, or a new one
    built (with a progress bar) and stored. ``dense`` (default: what `rag.retriever` needs) adds the FAISS index;
    ``embedder_factory`` makes the embedder from `rag.embedding_model` (tests inject one with known vectors)."""
    dense = uses_dense(config.retriever) if dense is None else dense
    embedder = embedder_factory(config.embedding_model) if dense else None
    key = index_key(config, tokenizer, embedder)
    folder = index_root() / key
    recover_folder(folder)
    if (folder / "passages.jsonl").is_file():
        return _read_entry(folder, embedder, config.rrf_k, key), True
    index = _build(config, tokenizer, embedder, key)
    with staged_folder(folder, first_wins=True) as staging:
        index.bm25.save(str(staging / "bm25"), show_progress=False)
        if index.faiss_index is not None:
            save_faiss(index.faiss_index, staging / "dense.faiss")
        # Written last: an entry is complete when it has its passages (the staging rename makes that atomic too).
        write_jsonl(staging / "passages.jsonl", [asdict(passage) for passage in index.passages])
    return index, False


def _read_entry(folder: Path, embedder: Embedder | None, rrf_k: int, key: str) -> RetrievalIndex:
    import bm25s

    passages = [Passage(**row) for row in read_jsonl(folder / "passages.jsonl")]
    bm25 = bm25s.BM25.load(str(folder / "bm25"), show_progress=False)
    faiss_index = load_faiss(folder / "dense.faiss") if embedder is not None else None
    return RetrievalIndex(passages, bm25, faiss_index, embedder, rrf_k, key)


def _build(config: RagConfig, tokenizer, embedder: Embedder | None, key: str) -> RetrievalIndex:
    import bm25s

    documents = read_documents(config)
    passages: list[Passage] = []
    with Progress(transient=True) as progress:
        task = progress.add_task(f"chunking {len(documents)} documents", total=len(documents))
        for document in documents:
            passages += chunk_document(document, tokenizer, config.chunk_tokens, config.chunk_overlap)
            progress.advance(task)
        bm25 = bm25s.BM25()
        bm25.index(bm25s.tokenize([_searchable(p) for p in passages], stopwords="en", show_progress=False),
                   show_progress=False)
        faiss_index = None
        if embedder is not None:
            task = progress.add_task(f"embedding {len(passages)} passages", total=len(passages))
            vectors = []
            for start in range(0, len(passages), _EMBED_BATCH):
                batch = passages[start : start + _EMBED_BATCH]
                vectors.append(embedder.encode([_searchable(p) for p in batch]))
                progress.advance(task, len(batch))
            faiss_index = build_faiss(np.concatenate(vectors))
    log.info("retrieval index: %d documents, %d passages%s (cache key %s)", len(documents), len(passages),
             ", with embeddings" if embedder is not None else "", key)
    return RetrievalIndex(passages, bm25, faiss_index, embedder, config.rrf_k, key)


def _searchable(passage: Passage) -> str:
    """What is indexed: the title too, since a question often names the subject only the title does."""
    return f"{passage.title}\n{passage.text}" if passage.title else passage.text
