"""`tunesmith rag index` builds the index once and then finds it in the cache; `rag query` prints the passages with
scores; a config without documents is a one-line error."""

import yaml

from tunesmith.cli import main


def _config(tmp_path, tiny_model_dir, write_jsonl, rag=True):
    write_jsonl(tmp_path / "docs.jsonl", [
        {"id": "etna", "title": "Etna", "text": "Mount Etna is an active volcano in Sicily."},
        {"id": "whale", "title": "Blue whale", "text": "The blue whale is the largest animal in the ocean."},
    ])
    raw = {"model": {"name": str(tiny_model_dir)}, "data": {"train": "train.jsonl"}}
    if rag:
        raw["rag"] = {"documents": "docs.jsonl"}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(raw))
    return str(tmp_path / "config.yaml")


def test_index_then_query(tmp_path, tiny_model_dir, write_jsonl, capsys, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    config = _config(tmp_path, tiny_model_dir, write_jsonl)
    assert main(["rag", "index", config]) == 0
    assert "2 documents, 2 passages (built)" in capsys.readouterr().out
    assert main(["rag", "index", config]) == 0
    assert "(already in the cache)" in capsys.readouterr().out
    assert main(["rag", "query", config, "Which volcano is in Sicily?", "--top-k", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("1. ") and "etna #0  Etna" in out and "whale" not in out


def test_without_documents_is_an_error_naming_the_key(tmp_path, tiny_model_dir, write_jsonl, capsys):
    assert main(["rag", "query", _config(tmp_path, tiny_model_dir, write_jsonl, rag=False), "q"]) == 2
    assert "config: rag.documents: is not set" in capsys.readouterr().err
