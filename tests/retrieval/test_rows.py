"""RAFT rows: the gold passage is in a training prompt when retrieval found it, and mixed in at the configured rate
(seeded) when it did not; documents become plain-text rows; `tunesmith run` trains on these rows through the
ordinary data stage."""

import json

import pytest

from tunesmith.config import validate_config
from tunesmith.pipeline import create_run, run_pipeline
from tunesmith.retrieval.chunking import Passage
from tunesmith.retrieval.rows import RaftCounts, raft_passages, rag_run_config


def _passages(*ids):
    return [Passage(document, document.upper(), f"text of {document}", 0, 0, 3) for document in ids]


def test_retrieved_gold_is_kept_and_missed_gold_is_mixed_in_at_the_rate():
    import random

    gold = _passages("gold")[0]
    counts = RaftCounts()
    hits = _passages("a", "gold", "b")
    assert raft_passages(hits, gold, 0.0, random.Random(0), counts) == hits
    assert counts.gold_retrieved == 1

    rng, counts, rows = random.Random(0), RaftCounts(), []
    for _ in range(2000):
        rows.append(raft_passages(_passages("a", "b", "c"), gold, 0.3, rng, counts))
    with_gold = [row for row in rows if gold in row]
    assert len(with_gold) == counts.gold_mixed_in and counts.distractors_only == 2000 - len(with_gold)
    assert len(with_gold) / 2000 == pytest.approx(0.3, abs=0.03)
    assert all(len(row) == 3 and _passages("c")[0] not in row for row in with_gold)  # the last distractor made room
    assert {row.index(gold) for row in with_gold} == {0, 1, 2}  # the gold passage is not always in one place
    again = [raft_passages(_passages("a", "b", "c"), gold, 0.3, random.Random(0), RaftCounts()) for _ in range(1)]
    assert again[0] == rows[0]  # seeded


def _write_fixture_data(tmp_path, write_jsonl, documents):
    write_jsonl(tmp_path / "documents.jsonl", documents)
    rows = [{"question": f"Tell me about {doc['title']} number {i}", "answer": doc["title"], "gold": doc["doc"]}
            for i in range(3) for doc in documents]
    return write_jsonl(tmp_path / "qa.jsonl", rows)


def test_a_run_trains_on_raft_rows_and_documents_through_the_data_stage(tmp_path, tiny_model_dir, write_jsonl,
                                                                        monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    documents = [{"doc": f"d{i}", "title": f"Topic{i}", "body": f"Topic{i} is about thing {i}. " * (4 + 10 * i)}
                 for i in range(4)]
    path = _write_fixture_data(tmp_path, write_jsonl, documents)
    config = validate_config({
        "model": {"name": str(tiny_model_dir)},
        "data": {"path": path, "format": "prompt_completion", "columns": {"prompt": "question", "completion": "answer"},
                 "split": {"validation": 0.2, "test": 0.2}, "max_length": 400},
        "lora": {"r": 2, "alpha": 4, "target_modules": ["q_proj", "v_proj"]},
        "train": {"max_steps": 1, "batch_size": 4, "eval_every": 1},
        "evaluate": {"batch_size": 4, "num_examples": 1, "max_new_tokens": 4, "compare_base": False},
        "output": {"dir": str(tmp_path / "runs")},
        "rag": {"documents": str(tmp_path / "documents.jsonl"),
                "columns": {"id": "doc", "text": "body", "title": "title"}, "gold_column": "gold",
                "chunk_tokens": 64, "chunk_overlap": 8, "top_k": 2, "gold_mix": 1.0,
                "train_with_context": True, "answer_with_context": True, "sft_on_documents": True,
                "prompt": "{passages}\nQ: {question}"},
    })
    run = run_pipeline(config, create_run(config))
    folder = run.root / "rag"
    train = [json.loads(line) for line in (folder / "train.jsonl").read_text().splitlines()]
    summary = json.loads((folder / "summary.json").read_text())
    questions = [row for row in train if row["messages"][0]["content"]]
    assert len(train) - len(questions) == summary["documents_added"] == 4
    assert all("[1] Topic" in row["messages"][0]["content"] for row in questions)
    for row in questions:  # gold_mix 1.0: every training prompt holds its gold document's passage
        assert f"Topic{row['messages'][1]['content'][-1]}" in row["messages"][0]["content"]
    assert summary["raft"]["gold_retrieved"] + summary["raft"]["gold_mixed_in"] == len(questions)
    assert summary["train_prompts"]["rows_short"] == 0
    # The ordinary data stage checked and tokenized these rows: the longest document row is cut, and counted.
    data_summary = json.dumps(json.loads(run.data_summary.read_text()))
    assert "rag/train.jsonl:12" in data_summary and "truncated" in data_summary
    # Commands on the finished run (`tunesmith eval RUN`, export, report) read the same rows, not rebuilt.
    written = (folder / "train.jsonl").stat().st_mtime_ns
    derived = rag_run_config(run.config(), run)
    assert derived.data.test == str(folder / "test.jsonl") and derived.data.format == "messages"
    assert (folder / "train.jsonl").stat().st_mtime_ns == written
    evaluation = json.loads(run.eval_json.read_text())
    assert "[1] " in json.loads(run.predictions.read_text().splitlines()[0])["prompt"]
    assert evaluation["task"] == "generation"
    assert set(summary["test_retrieval"]["bm25"]) == {"recall@1", "recall@2", "recall@5", "recall@10", "mrr",
                                                       "questions"}
    report = run.report_md.read_text()
    assert "## Retrieval" in report and "gold passage mixed in" in report and "recall@2" in report


def test_a_split_without_rows_stays_without_rows(tmp_path, tiny_model_dir, write_jsonl, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    documents = [{"doc": f"d{i}", "title": f"Topic{i}", "body": f"Topic{i} is about thing {i}."} for i in range(3)]
    path = _write_fixture_data(tmp_path, write_jsonl, documents)
    config = validate_config({
        "model": {"name": str(tiny_model_dir)},
        "data": {"path": path, "format": "prompt_completion", "columns": {"prompt": "question", "completion": "answer"},
                 "split": {"validation": 0.0, "test": 0.3}},
        "output": {"dir": str(tmp_path / "runs")},
        "rag": {"documents": str(tmp_path / "documents.jsonl"), "columns": {"id": "doc", "text": "body"},
                "sft_on_documents": True},
    })
    run = create_run(config)
    derived = rag_run_config(config, run)
    assert derived.data.validation is None and derived.data.split.validation == 0.0
    assert derived.data.test == str(run.rag / "test.jsonl") and not (run.rag / "validation.jsonl").exists()
    train = (run.rag / "train.jsonl").read_text().splitlines()
    assert len(train) == 6 + 3  # 9 questions less 3 held out for test, and the 3 documents
