"""Experiments on retrieval-augmented generation: `compare_rag` (`tunesmith compare-rag`) measures base, base+RAG,
SFT and SFT+RAG on the same test questions."""

from tunesmith.rag.compare import ARMS, compare_rag, comparison_folder

__all__ = ["ARMS", "compare_rag", "comparison_folder"]
