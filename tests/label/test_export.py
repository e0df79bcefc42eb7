"""`label export`: the majority label of each item as a row in the run's own format under tunesmith's own columns,
through the writer feedback export uses; `data check` reads the file alone."""

from __future__ import annotations

import json

import pytest

from tunesmith.data import run_check
from tunesmith.errors import ConfigError
from tunesmith.json_files import read_jsonl
from tunesmith.label import export
from tunesmith.label.create import create_queue
from tunesmith.label.export import export_labels
from tunesmith.label.store import LabelQueue, QueueMeta
from tunesmith.monitor import training_rows
from tunesmith.monitor.feedback import export_feedback

SPAM_COLUMNS = {"text": "sms", "label": "category"}



@pytest.fixture()
def mapped_run(label_run, spam_rows):
    rows = [{SPAM_COLUMNS[key]: value for key, value in row.items()} for row in spam_rows(30)]
    return label_run("mapped-run", rows, data={"columns": SPAM_COLUMNS})


def test_majority_labels_are_rows_data_check_reads_alone(tmp_path, mapped_run, request_log, records, tiny_model_dir):
    texts = ["win cash now", "lunch at noon?", "call me later", "free tickets tonight", "see you soon"]
    logs = request_log([records.classified(i, text, confidence=0.5 + i / 100) for i, text in enumerate(texts)],
                       mapped_run)
    create_queue(logs, out=tmp_path / "q.db")
    with LabelQueue.open(tmp_path / "q.db") as queue:
        for annotator, values in {"ann": ["spam", "ham", "ham", "spam", None],
                                  "bob": ["spam", "ham", "spam", "skip", None],
                                  "cid": ["spam", "spam", None, None, None]}.items():
            for item_id, value in enumerate(values, start=1):
                if value == "skip":
                    queue.annotate(item_id, annotator, None, skipped=True)
                elif value:
                    queue.annotate(item_id, annotator, value)
    out = tmp_path / "labels.jsonl"
    result = export_labels(tmp_path / "q.db", out)
    assert read_jsonl(out) == [{"text": "win cash now", "label": "spam"},
                              {"text": "lunch at noon?", "label": "ham"},
                              {"text": "free tickets tonight", "label": "spam"}]
    assert result.written == 3 and result.exit_code == 0 and result.format == "classification"
    assert result.skipped == {export.DISAGREE: 1, export.NOT_LABELED: 1}
    text, code = run_check(str(out), [f"model.name={tiny_model_dir}"], True)
    report = json.loads(text)
    assert (report["format"], report["labels"], report["findings"], code) == ("classification", ["ham", "spam"], [], 0)
    assert result.render("item").startswith(f"wrote 3 rows (classification: text, label) to {out}\nthe rows use "
                                            "tunesmith's own column names")


def test_the_same_writer_as_feedback_export(tmp_path, mapped_run, request_log, records):
    conversation = [{"role": "system", "content": "be kind"}, {"role": "user", "content": "free cash, reply now"}]
    logs = request_log([{**records.chatted(0, "", "ham", confidence=0.5), "messages": conversation},
                        {"kind": "feedback", "id": "req-0", "rating": "down", "label": "spam"}], mapped_run)
    export_feedback(logs, tmp_path / "feedback.jsonl")
    # the feedback-labelled request is not queued again; a queue made from the same request gives the same row
    item = {"request_id": "req-0", "input": "free cash, reply now", "messages": conversation,
            "reason": "least confident: 0.500"}
    queue = LabelQueue.create(tmp_path / "q.db", _meta(mapped_run), [item])
    queue.annotate(1, "ann", "spam")
    export_labels(tmp_path / "q.db", tmp_path / "labels.jsonl")
    assert read_jsonl(tmp_path / "labels.jsonl") == read_jsonl(tmp_path / "feedback.jsonl") == [
        {"text": "free cash, reply now", "label": "spam", "system": "be kind"}]
    assert export.TrainingRows is training_rows.TrainingRows


def test_generation_rows_and_unlabelled_items(tmp_path, label_run, request_log, records):
    rows = [{"instruction": f"question {i}", "output": f"answer {i}"} for i in range(20)]
    run = label_run("alpaca-run", rows)
    logs = request_log([records.chatted(0, "what is two and two?", "five", confidence=0.2),
                        records.chatted(1, "name a colour of the sky", "green", confidence=0.3),
                        records.chatted(2, "the largest planet, please", "Mars", confidence=0.4)], run)
    create_queue(logs, out=tmp_path / "q.db")
    with LabelQueue.open(tmp_path / "q.db") as queue:
        assert queue.meta.task == "generation" and queue.meta.format == "alpaca"
        queue.annotate(1, "ann", "Four.")
        queue.annotate(2, "ann", None, skipped=True)
    result = export_labels(tmp_path / "q.db", tmp_path / "out.jsonl")
    assert read_jsonl(tmp_path / "out.jsonl") == [{"instruction": "what is two and two?", "output": "Four."}]
    assert result.skipped == {export.ALL_SKIPPED: 1, export.NOT_LABELED: 1}


def test_nothing_labelled_writes_nothing(tmp_path, make_queue, label_run):
    make_queue(2, run=str(label_run().root))
    result = export_labels(tmp_path / "queue.db", tmp_path / "out.jsonl")
    assert result.exit_code == 1 and not (tmp_path / "out.jsonl").exists()
    assert result.render("item").startswith("no item qualifies as a classification row: wrote nothing")


def test_out_is_never_replaced_unasked(tmp_path, make_queue, label_run):
    queue = make_queue(1, run=str(label_run().root))
    queue.annotate(1, "ann", "spam")
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="already exists; label export does not replace a file unless asked"):
        export_labels(tmp_path / "queue.db", out)
    assert out.read_text(encoding="utf-8") == "precious\n"
    assert export_labels(tmp_path / "queue.db", out, overwrite=True).written == 1
    with pytest.raises(ConfigError, match="JSON Lines"):
        export_labels(tmp_path / "queue.db", tmp_path / "out.csv")


def _meta(run) -> QueueMeta:
    return QueueMeta(run=str(run.root), log_dir="logs", task="classification", labels=["ham", "spam"],
                     format="classification", strategy="uncertainty", budget=1, created="now", teacher_model=None)
