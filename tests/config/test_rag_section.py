"""The rag: section: defaults leave retrieval off, relative paths follow the config file, and every mistake names
its key."""

import pytest
import yaml

from tunesmith.config import load_config, validate_config
from tunesmith.errors import ConfigError


def _load(tmp_path, rag: dict):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"data": {"train": "train.jsonl"}, "rag": rag}))
    return load_config(str(path))


def test_off_by_default_and_paths_relative_to_the_config(tmp_path):
    assert not validate_config({"data": {"train": "t.jsonl"}}).rag.enabled
    config = _load(tmp_path, {"documents": "docs/", "embedding_model": "models/minilm"})
    assert config.rag.enabled and config.rag.documents == str(tmp_path / "docs")
    assert config.rag.embedding_model == str(tmp_path / "models" / "minilm")
    assert _load(tmp_path, {"documents": "d.jsonl"}).rag.embedding_model == "default"


@pytest.mark.parametrize("rag,key,words", [
    ({"documents": "d.jsonl", "retriever": "bm26"}, "rag.retriever", "'bm25', 'dense' or 'hybrid'"),
    ({"documents": "d.jsonl", "chunk_tokens": 64, "chunk_overlap": 64}, "rag", "chunk_overlap (64) must be below"),
    ({"documents": "d.jsonl", "columns": {"body": "text"}}, "rag.columns", "'body': not a document field"),
    ({"documents": "d.jsonl", "prompt": "Question: {question}"}, "rag.prompt", "needs {passages}"),
    ({"documents": "d.jsonl", "train_with_context": True}, "rag", "train_with_context needs gold_column"),
    ({"sft_on_documents": True}, "rag", "sft_on_documents needs rag.documents"),
    ({"documents": "d.jsonl", "gold_mix": 1.5}, "rag.gold_mix", "1"),
    ({"documents": "d.jsonl", "top_kk": 3}, "rag.top_kk", "top_k"),
])
def test_mistakes_name_the_key(tmp_path, rag, key, words):
    with pytest.raises(ConfigError) as caught:
        _load(tmp_path, rag)
    message = str(caught.value)
    assert f"config: {key}" in message and words in message, message
