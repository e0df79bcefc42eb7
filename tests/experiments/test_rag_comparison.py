"""compare-rag on the tiny model: both fine-tunes trained, four arms written with metrics that are those of their
own predictions, the report beside them; a second comparison reuses the trained arms and never overwrites
without being asked."""

import json

import pytest

from tunesmith.cli import main
from tunesmith.config import load_config
from tunesmith.errors import RunError
from tunesmith.experiments import rag_comparison as compare_module
from tunesmith.experiments.rag_comparison import ARMS, compare_rag
from tunesmith.predict.answers import Answers
from tunesmith.predict.metrics import qa_metrics

FACTS = [
    ("d1", "Paris", "Paris is the capital of France.", "What is the capital of France?", "Paris"),
    ("d2", "Etna", "Mount Etna is a volcano in Sicily.", "Where is Mount Etna?", "Sicily"),
    ("d3", "Whale", "The blue whale is the largest animal.", "What is the largest animal?", "blue whale"),
    ("d4", "Chess", "A chess board has sixty-four squares.", "How many squares has a chess board?", "sixty-four"),
]


@pytest.fixture()
def comparison_config(tmp_path, tiny_model_dir, write_jsonl, monkeypatch):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    write_jsonl(tmp_path / "documents.jsonl", [{"id": d, "title": t, "text": text} for d, t, text, _, _ in FACTS])
    questions = [{"question": q, "answer": a, "context_id": d} for d, _, _, q, a in FACTS]
    write_jsonl(tmp_path / "train.jsonl", questions * 3)
    write_jsonl(tmp_path / "test.jsonl", questions)
    (tmp_path / "config.yaml").write_text(f"""
model: {{name: {tiny_model_dir}}}
data:
  train: train.jsonl
  test: test.jsonl
  columns: {{prompt: question, completion: answer}}
  split: {{validation: 0.2}}
  max_length: 192
lora: {{r: 2, alpha: 4, target_modules: [q_proj, v_proj]}}
train: {{max_steps: 2, batch_size: 4, eval_every: 2}}
evaluate: {{max_new_tokens: 4, batch_size: 4, num_examples: 2}}
rag: {{documents: documents.jsonl, gold_column: context_id, chunk_tokens: 32, chunk_overlap: 4, top_k: 2,
      sft_on_documents: true}}
output: {{dir: {tmp_path / "runs"}}}
""", encoding="utf-8")
    return tmp_path / "config.yaml"


def _records(out, arm):
    path = out / "predictions" / f"{arm.lower().replace('+', '_')}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_four_arms_scored_from_their_own_predictions(comparison_config, tmp_path, monkeypatch):
    out = tmp_path / "cmp"
    result = compare_rag(load_config(comparison_config), comparison_config, out)
    assert list(result["arms"]) == list(ARMS) and result["num_questions"] == 4
    for arm in ARMS:
        records = _records(out, arm)
        assert len(records) == 4
        recomputed = qa_metrics([r["references"] for r in records], [r["prediction"] for r in records])
        assert result["arms"][arm]["metrics"]["squad_em"] == pytest.approx(recomputed["squad_em"])
        assert result["arms"][arm]["metrics"]["squad_f1"] == pytest.approx(recomputed["squad_f1"])
        with_passages = "[1] " in records[0]["prompt"]
        assert with_passages == arm.endswith("+RAG")
        assert result["arms"][arm]["prompt_tokens_per_question"] > 0
    rag_tokens = result["arms"]["base+RAG"]["prompt_tokens_per_question"]
    assert rag_tokens > result["arms"]["base"]["prompt_tokens_per_question"]  # RAG's cost, measured
    assert set(result["retrieval"]) == {"bm25", "dense", "hybrid"}
    assert 0 <= result["retrieval"]["bm25"]["recall@2"] <= 1
    assert (out / "report.html").is_file() and (out / "arms.png").is_file()
    assert "SFT+RAG" in (out / "report.md").read_text()

    trained = json.loads((out / "sft_rag" / "rag" / "summary.json").read_text())
    assert trained["documents_added"] == 4 and sum(trained["raft"].values()) > 0
    assert not (out / "sft" / "rag" / "summary.json").read_text().count("raft")

    with pytest.raises(RunError, match="already holds a comparison"):
        compare_rag(load_config(comparison_config), comparison_config, out)
    # Answers with known scores: every arm's metrics must be those of its own file's predictions.
    def known_answers(model, tokenizer, examples, task, eval_config):
        with_passages = ["[1] " in example.prompt_messages[-1]["content"] for example in examples]
        return Answers([example.reference if rag else f"not {example.reference} but the {example.reference}s"
                        for example, rag in zip(examples, with_passages)])

    monkeypatch.setattr(compare_module, "answer", known_answers)
    again = compare_rag(load_config(comparison_config), comparison_config, out, overwrite=True)
    assert sorted(again["reused_runs"]) == ["sft", "sft_rag"]
    for arm in ARMS:
        metrics, records = again["arms"][arm]["metrics"], _records(out, arm)
        assert metrics["squad_em"] == (1.0 if arm.endswith("+RAG") else 0.0)
        assert metrics["squad_f1"] == pytest.approx(qa_metrics([r["references"] for r in records],
                                                               [r["prediction"] for r in records])["squad_f1"])
        assert 0 < metrics["squad_f1"] <= 1
    (out / "comparison.json").unlink()  # as a comparison stopped before its end leaves the folder
    changed = load_config(comparison_config, ["train.learning_rate=0.001"])
    with pytest.raises(RunError, match="trained with other settings"):
        compare_rag(changed, comparison_config, out)


def test_compare_rag_needs_documents_and_a_gold_column(comparison_config, capsys):
    assert main(["compare-rag", str(comparison_config), "--set", "rag.gold_column=null"]) == 2
    assert "rag.gold_column" in capsys.readouterr().err
