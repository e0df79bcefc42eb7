"""`tunesmith label create/stats/export` end to end, in-process, and their argument errors as one line."""

from __future__ import annotations

import json

import pytest


def test_create_stats_export(tmp_path, label_run, request_log, records, cli):
    run = label_run()
    logs = request_log([records.classified(i, f"message {i} about {word}", confidence=0.5 + i / 10)
                        for i, word in enumerate(["cash", "lunch", "prizes"])], run)
    code, out, error = cli("label", "create", str(logs), "--budget", "2")
    queue = run.root / "labeling" / "queue.db"
    assert (code, error) == (0, "") and out.startswith(f"queue: {queue} (2 requests to label of 3 in the log")
    assert "ranked below the budget: 1" in out

    from tunesmith.label.store import LabelQueue

    with LabelQueue.open(queue) as opened:
        opened.annotate(1, "ann", "spam")
        opened.annotate(2, "ann", "ham")
        opened.annotate(1, "bob", "spam")
    code, out, _ = cli("label", "stats", str(queue), "--json")
    stats = json.loads(out)
    assert code == 0 and stats["annotators"] == {"ann": {"labeled": 2, "skipped": 0},
                                                 "bob": {"labeled": 1, "skipped": 0}}
    code, out, _ = cli("label", "stats", str(queue))
    assert code == 0 and "ann: 2 labelled, 0 skipped" in out
    code, out, _ = cli("label", "export", str(queue), str(tmp_path / "rows.jsonl"))
    assert code == 0 and out.startswith("wrote 2 rows (classification")
    code, _, error = cli("label", "export", str(queue), str(tmp_path / "rows.jsonl"))
    assert code == 2 and "already exists" in error
    code, _, error = cli("label", "create", str(logs))
    assert code == 2 and "queue.db exists already" in error and "--overwrite" in error
    assert cli("label", "create", str(logs), "--overwrite", "--strategy", "uncertainty")[0] == 0


@pytest.mark.parametrize(("arguments", "message"), [
    (["--teacher", "http://127.0.0.1:9"], "--teacher URL and --teacher-model NAME go together"),
    (["--teacher-model", "big"], "--teacher URL and --teacher-model NAME go together"),
    (["--teacher", "http://127.0.0.1:9", "--teacher-model", "m", "--teacher-timeout", "0"],
     "--teacher-timeout: must be a positive number of seconds"),
    (["--budget", "-3"], "--budget: must be a whole number of requests, 1 or more; got -3"),
    (["--strategy", "novelty"], "carries novelty: serve the run after evaluating it with the rag extra"),
    (["--out", "queue.jsonl"], "a queue is an SQLite database"),
])
def test_create_argument_errors(tmp_path, label_run, request_log, records, cli, arguments, message):
    logs = request_log([records.classified(0, "hello", confidence=0.5)], label_run())
    code, _, error = cli("label", "create", str(logs), *arguments)
    assert code == 2 and message in error


def test_a_file_that_is_not_a_queue(tmp_path, cli):
    (tmp_path / "notes.db").write_text("hello", encoding="utf-8")
    code, _, error = cli("label", "stats", str(tmp_path / "notes.db"))
    assert code == 2 and "notes.db is not a labeling queue" in error
    code, _, error = cli("label", "export", str(tmp_path / "missing.db"), str(tmp_path / "out.jsonl"))
    assert code == 2 and "missing.db does not exist" in error


def test_an_unknown_strategy_is_refused_by_the_parser(cli, capsys):
    with pytest.raises(SystemExit):
        cli("label", "create", "logs", "--strategy", "random")
    assert "invalid choice: 'random'" in capsys.readouterr().err
