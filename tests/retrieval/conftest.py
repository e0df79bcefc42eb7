"""A small document collection with one question built to match each document, its files, and a tunesmith cache
in a temporary folder (so index-cache tests see only their own entries)."""

from __future__ import annotations

import pytest

from tunesmith.config.rag_section import RagConfig

DOCUMENTS = [
    {"doc": "d1", "title": "Paris", "body": "Paris is the capital of France. The Eiffel Tower stands on the Champ de "
     "Mars beside the Seine."},
    {"doc": "d2", "title": "Etna", "body": "Mount Etna is an active volcano on the island of Sicily in Italy, with "
     "frequent eruptions of lava."},
    {"doc": "d3", "title": "Blue whale", "body": "The blue whale is the largest animal known to have ever existed, "
     "reaching thirty metres in length in the ocean."},
    {"doc": "d4", "title": "Chess", "body": "Chess is a board game for two players, played on a checkered board "
     "with sixty-four squares arranged in a grid."},
]
QUESTIONS = {
    "What is the capital city of France?": "d1",
    "Which active volcano erupts lava in Sicily?": "d2",
    "What is the largest animal that ever existed in the ocean?": "d3",
    "How many squares does a chess board have?": "d4",
}
COLUMNS = {"id": "doc", "text": "body", "title": "title"}


@pytest.fixture()
def rag_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture()
def documents_file(tmp_path, write_jsonl):
    return write_jsonl(tmp_path / "documents.jsonl", DOCUMENTS)


@pytest.fixture()
def rag_config(documents_file):
    """``rag_config(**settings)``: a `RagConfig` over the small collection."""
    return lambda **settings: RagConfig(documents=documents_file, columns=COLUMNS, **settings)


class FakeEmbedder:
    """Known vectors through the `Embedder` interface: a text's vector is the one-hot of the document its words
    point to (by a keyword of each document), so dense search is exact and needs no model."""

    identity = "fake-embedder-v1"
    KEYWORDS = ("france", "volcano", "whale", "chess")

    def __init__(self, name: str = "default"):
        self.calls = 0

    def encode(self, texts):
        import numpy as np

        self.calls += 1
        vectors = np.zeros((len(texts), len(self.KEYWORDS) + 1), dtype=np.float32)
        for row, text in enumerate(texts):
            lowered = text.lower()
            hits = [column for column, word in enumerate(self.KEYWORDS) if word in lowered]
            for column in hits or [len(self.KEYWORDS)]:
                vectors[row, column] = 1.0
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture()
def fake_embedder():
    return FakeEmbedder


@pytest.fixture()
def questions():
    """Question → the id of the one document it was written to match."""
    return dict(QUESTIONS)


@pytest.fixture()
def columns():
    return dict(COLUMNS)
