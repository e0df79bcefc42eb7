"""Retrieval: documents → passages (`chunking`) → a cached BM25 / FAISS index (`index`) searched by `bm25`,
`dense` or `hybrid` (reciprocal-rank fusion); the prompt that puts passages before a question (`prompts`); recall@k
and MRR (`metrics`); and rows with retrieved context for training and evaluation (`rows`), which `tunesmith run`
and `tunesmith compare-rag` use. The same embeddings measure how novel an input is for a run (`novelty`): its
distance to the nearest training input, which evaluation records and the server logs per request."""

from tunesmith.retrieval.documents import SourceDocument, read_documents
from tunesmith.retrieval.index import Hit, RetrievalIndex, load_index, reciprocal_rank_fusion
from tunesmith.retrieval.metrics import retrieval_metrics
from tunesmith.retrieval.novelty import NoveltyIndex
from tunesmith.retrieval.prompts import PromptFit, with_passages
from tunesmith.retrieval.rows import context_examples, rag_run_config, rag_splits, uses_rows

__all__ = [
    "SourceDocument", "Hit", "NoveltyIndex", "PromptFit", "RetrievalIndex", "context_examples", "load_index",
    "rag_run_config", "rag_splits", "read_documents", "reciprocal_rank_fusion", "retrieval_metrics", "uses_rows",
    "with_passages",
]
