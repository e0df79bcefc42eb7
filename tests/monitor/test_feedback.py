"""`tunesmith feedback export`: rows in the run's own format under tunesmith's own column names, which `data check`
reads alone (format, labels, a planted problem) and a `data.sources` mix reads beside mapped old data; skip
reasons counted; OUT never replaced unasked."""

from __future__ import annotations

import json

import pytest

from tunesmith.cli import main
from tunesmith.config import validate_config
from tunesmith.data import run_check
from tunesmith.data.splits import load_splits
from tunesmith.errors import ConfigError, DataError, RunError
from tunesmith.json_files import read_jsonl, write_json
from tunesmith.monitor import feedback
from tunesmith.monitor.feedback import export_feedback

SPAM_COLUMNS = {"text": "sms", "label": "category"}


@pytest.fixture()
def check_alone(tiny_model_dir):
    """``check_alone(path) -> (JSON report, exit code)``: `tunesmith data check PATH`, the file read on its own (no
    run config; the tiny tokenizer instead of the default model's)."""
    def check(path) -> tuple[dict, int]:
        text, code = run_check(str(path), [f"model.name={tiny_model_dir}"], True)
        return json.loads(text), code

    return check


def served(run, name: str = "tuned") -> dict:
    return {"models": {name: {"run": str(run.root), "model": "merged"}, "base": {"run": None, "model": "/m"}},
            "primary": name, "shadow": None}


@pytest.fixture()
def mapped_spam_run(run_folder, spam_rows):
    rows = [{SPAM_COLUMNS[key]: value for key, value in row.items()} for row in spam_rows(30)]
    return run_folder("spam-run", rows, data={"columns": SPAM_COLUMNS})


def classification_log(request_record) -> list[dict]:
    return [
        request_record(1, text="win cash now, reply to claim", label="spam", probability=0.9),
        request_record(2, text="lunch at noon tomorrow?", label="spam", probability=0.6),
        request_record(3, text="hello there friend", label="ham", probability=0.7),
        request_record(4, text="call me when you land", label="ham", probability=0.8),
        request_record(5, text="meeting moved to five", label="ham", probability=0.9),
        request_record(6, status=500, error="timeout", text="free tickets for the game tonight"),
        request_record(7, status=500, error="timeout", text="see you soon"),
        request_record(8, model="base", text="are you coming", label="ham", probability=0.9),
        {"kind": "feedback", "id": "req-1", "rating": "up"},
        {"kind": "feedback", "id": "req-2", "rating": "down", "label": "ham"},
        {"kind": "feedback", "id": "req-3", "rating": None, "label": "eggs"},
        {"kind": "feedback", "id": "req-4", "rating": "up"},
        {"kind": "feedback", "id": "req-4", "rating": "down"},  # the latest feedback wins
        {"kind": "feedback", "id": "req-6", "rating": None, "label": "spam"},
        {"kind": "feedback", "id": "req-7", "rating": "up"},
        {"kind": "feedback", "id": "req-8", "rating": "up"},
        {"kind": "feedback", "id": "req-gone", "rating": "up"},
    ]


def test_classification_rows_use_tunesmiths_columns_and_the_run_labels(tmp_path, check_alone, mapped_spam_run,
                                                                       request_record, write_log):
    logs = write_log(tmp_path / "logs", classification_log(request_record), served(mapped_spam_run))
    out = tmp_path / "feedback.jsonl"
    result = export_feedback(logs, out)
    assert read_jsonl(out) == [
        {"text": "win cash now, reply to claim", "label": "spam"},
        {"text": "lunch at noon tomorrow?", "label": "ham"},
        {"text": "free tickets for the game tonight", "label": "spam"},
    ]
    assert result.written == 3 and result.exit_code == 0 and result.format == "classification"
    assert result.skipped == {feedback.UNKNOWN_LABEL: 1, feedback.RATED_DOWN: 1, feedback.UNRATED: 1,
                              feedback.FAILED: 1, feedback.OTHER_MODEL: 1, feedback.NO_REQUEST: 1}
    assert result.render().splitlines()[:2] == [
        f"wrote 3 rows (classification: text, label) to {out}",
        f"the rows use tunesmith's own column names, not run {mapped_spam_run.root}'s data.columns "
        "{text: sms, label: category}: beside that data, give their data.sources entry columns: "
        "{text: text, label: label}"]
    report, code = check_alone(out)
    assert (report["format"], report["labels"], code) == ("classification", ["ham", "spam"], 0)


def test_data_check_reads_the_export_alone_and_finds_a_planted_problem(tmp_path, check_alone, mapped_spam_run,
                                                                       request_record, write_log):
    out = tmp_path / "feedback.jsonl"
    export_feedback(write_log(tmp_path / "logs", classification_log(request_record), served(mapped_spam_run)), out)
    with out.open("a", encoding="utf-8") as file:
        file.write(json.dumps({"text": "win cash now, reply to claim", "label": "spam"}) + "\n")  # line 4
        file.write(json.dumps({"text": "no label here", "label": ""}) + "\n")                   # line 5
    report, code = check_alone(out)
    assert (report["format"], report["labels"]) == ("classification", ["ham", "spam"])
    duplicates = [f for f in report["findings"] if f["kind"] == "duplicate"]
    assert duplicates[0]["locations"] == [f"{out}:4 (same as {out}:1)"], report["findings"]
    assert report["unreadable"] == [f"{out}:5: label 'label' is empty"]
    assert code == 2


def test_the_next_run_mixes_the_feedback_with_the_old_data(tmp_path, mapped_spam_run, request_record, write_log):
    texts = [f"message number {n} about the {word}" for n, word in enumerate(["bus", "cash", "party"] * 4)]
    records = [request_record(n, text=text, label="spam" if "cash" in text else "ham", probability=0.9)
               for n, text in enumerate(texts)]
    records += [{"kind": "feedback", "id": f"req-{n}", "rating": "up"} for n in range(len(texts))]
    out = tmp_path / "feedback.jsonl"
    assert export_feedback(write_log(tmp_path / "logs", records, served(mapped_spam_run)), out).written == 12
    old = mapped_spam_run.config().data.path
    undone = {"text": "text", "label": "label"}
    mixed = validate_config({"data": {"sources": [{"path": old}, {"path": str(out), "weight": 2, "columns": undone}],
                                      "columns": SPAM_COLUMNS}})
    splits = load_splits(mixed.data)
    assert splits.format == "classification" and splits.labels == ["ham", "spam"]
    assert splits.sources[str(out)]["rows"] == 12 and splits.sources[str(out)]["train_weighted"] == 20
    seen = {example.messages[-2]["content"].split("\n\n")[-1] for example in splits.train}
    assert len(seen & set(texts)) == 10
    # without the undoing columns the file is read through the old data's mapping: one line naming the fix
    unmapped = validate_config({"data": {"sources": [{"path": old}, {"path": str(out)}], "columns": SPAM_COLUMNS}})
    with pytest.raises(DataError) as caught:
        load_splits(unmapped.data)
    assert str(caught.value).startswith(f"{out}:1: missing key 'category' (data.columns maps `label` to it)")
    assert str(caught.value).endswith("(as one of data.sources: columns: {label: label}))")


def test_min_rating_none_keeps_unrated_answers(tmp_path, mapped_spam_run, request_record, write_log):
    logs = write_log(tmp_path / "logs", classification_log(request_record), served(mapped_spam_run))
    out = tmp_path / "all.jsonl"
    result = export_feedback(logs, out, min_rating="none")
    assert {"text": "meeting moved to five", "label": "ham"} in read_jsonl(out)
    assert result.written == 4 and feedback.UNRATED not in result.skipped


def test_the_data_summary_gives_format_and_labels(tmp_path, mapped_spam_run, request_record, write_log):
    write_json(mapped_spam_run.data_summary, {"format": "classification", "labels": ["ham", "spam", "eggs"]})
    logs = write_log(tmp_path / "logs", classification_log(request_record), served(mapped_spam_run))
    result = export_feedback(logs, tmp_path / "out.jsonl")
    assert result.written == 4 and feedback.UNKNOWN_LABEL not in result.skipped


QUESTIONS = [f"What is {i} plus {i}?" for i in range(20)]
GENERATION_RUNS = {
    # format: (a training row of question q and answer a, data.columns)
    "messages": (lambda q, a: {"dialog": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]},
                 {"messages": "dialog"}),
    "sharegpt": (lambda q, a: {"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]}, {}),
    "alpaca": (lambda q, a: {"instruction": q, "input": "", "output": a}, {}),
    "prompt_completion": (lambda q, a: {"q": q, "a": a}, {"prompt": "q", "completion": "a"}),
}
CORRECTED = {  # the row of request 2 (corrected) in each format
    "messages": {"messages": [{"role": "user", "content": "Name a fruit."},
                              {"role": "assistant", "content": "Apple."}]},
    "sharegpt": {"conversations": [{"from": "human", "value": "Name a fruit."}, {"from": "gpt", "value": "Apple."}]},
    "alpaca": {"instruction": "Name a fruit.", "output": "Apple."},
    "prompt_completion": {"prompt": "Name a fruit.", "completion": "Apple."},
}


def chat_log(request_record) -> list[dict]:
    def user(text):
        return {"role": "user", "content": text}

    return [
        request_record(1, messages=[user("Name a colour.")], answer="Blue."),
        request_record(2, messages=[user("Name a fruit.")], answer="Carrot."),
        request_record(3, messages=[user("Hi"), {"role": "assistant", "content": "Hello! How can I help?"},
                                    user("Name a city.")], answer="Paris."),
        request_record(4, messages=[{"role": "system", "content": "Be brief."}, user("Name a planet.")],
                       answer="Mars."),
        request_record(5, messages=[user("Name a colour.")], answer="Blue."),
        request_record(6, messages=[user("Name a bird.")], answer="A cat."),
        *({"kind": "feedback", "id": f"req-{n}", "rating": "up"} for n in (1, 3, 4, 5)),
        {"kind": "feedback", "id": "req-2", "rating": "down", "correction": "Apple."},
        {"kind": "feedback", "id": "req-6", "rating": "down"},
    ]


@pytest.mark.parametrize("fmt", sorted(GENERATION_RUNS))
def test_generation_rows_in_the_run_format(tmp_path, check_alone, run_folder, request_record, write_log, fmt):
    make_row, columns = GENERATION_RUNS[fmt]
    run = run_folder(f"{fmt}-run", [make_row(q, str(2 * i)) for i, q in enumerate(QUESTIONS)],
                     data={"columns": columns})
    logs = write_log(tmp_path / "logs", chat_log(request_record))
    out = tmp_path / "feedback.jsonl"
    result = export_feedback(logs, out, run=run.root)
    rows = read_jsonl(out)
    assert rows[1] == CORRECTED[fmt] and result.format == fmt
    multi_turn = fmt in ("messages", "sharegpt")
    assert result.written == (4 if multi_turn else 3)
    expected_skips = {feedback.DUPLICATE: 1, feedback.RATED_DOWN: 1}
    assert result.skipped == (expected_skips if multi_turn else {**expected_skips, feedback.MULTI_TURN: 1})
    if fmt == "alpaca":
        assert rows[2] == {"instruction": "Name a planet.", "output": "Mars.", "system": "Be brief."}
    report, code = check_alone(out)
    assert (report["format"], code) == (fmt, 0)


def test_regression_targets_are_numbers(tmp_path, check_alone, run_folder, request_record, write_log):
    run = run_folder("stars-run", [{"text": f"review number {i}", "stars": i % 5 + 0.5} for i in range(20)],
                     data={"columns": {"target": "stars"}})
    records = [
        request_record(1, messages=[{"role": "user", "content": "Great film"}], answer="4.5"),
        request_record(2, messages=[{"role": "user", "content": "Bad film"}], answer="5"),
        request_record(3, messages=[{"role": "user", "content": "Meh"}], answer="three"),
        {"kind": "feedback", "id": "req-1", "rating": "up"},
        {"kind": "feedback", "id": "req-2", "rating": "down", "correction": "1"},
        {"kind": "feedback", "id": "req-3", "rating": "up"},
    ]
    out = tmp_path / "feedback.jsonl"
    result = export_feedback(write_log(tmp_path / "logs", records), out, run=run.root)
    assert read_jsonl(out) == [{"text": "Great film", "target": 4.5}, {"text": "Bad film", "target": 1.0}]
    assert result.skipped == {feedback.NOT_A_NUMBER: 1}
    report, code = check_alone(out)
    assert (report["format"], code) == ("regression", 0)


def test_a_log_without_content_gives_only_labels(tmp_path, mapped_spam_run, request_record, write_log):
    records = [request_record(1, text="hidden", label="spam", probability=0.9),
               request_record(2, messages=[{"role": "user", "content": "hidden"}], answer="hidden"),
               {"kind": "feedback", "id": "req-1", "rating": "up"}, {"kind": "feedback", "id": "req-2", "rating": "up"}]
    logs = write_log(tmp_path / "logs", records, served(mapped_spam_run), log_content=False)
    result = export_feedback(logs, tmp_path / "out.jsonl")
    assert result.written == 0 and result.skipped == {feedback.NO_CONTENT: 2}
    assert result.exit_code == 1 and not (tmp_path / "out.jsonl").exists()


def test_out_is_never_replaced_unasked(tmp_path, mapped_spam_run, request_record, write_log, capsys, error_of):
    logs = write_log(tmp_path / "logs", classification_log(request_record), served(mapped_spam_run))
    out = tmp_path / "feedback.jsonl"
    out.write_text("precious\n", encoding="utf-8")
    assert main(["feedback", "export", str(logs), str(out)]) == 2
    assert "already exists" in capsys.readouterr().err and out.read_text(encoding="utf-8") == "precious\n"
    assert main(["feedback", "export", str(logs), str(out), "--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"wrote 3 rows (classification: text, label) to {out}\n")
    assert f"  {feedback.RATED_DOWN}: 1" in printed
    assert len(read_jsonl(out)) == 3
    assert "is a file of the request log" in error_of(lambda: export_feedback(logs, logs / "requests.jsonl",
                                                                               overwrite=True))
    with pytest.raises(ConfigError, match="JSON Lines"):
        export_feedback(logs, tmp_path / "feedback.csv")


def test_a_run_is_needed(tmp_path, run_folder, request_record, write_log, capsys):
    logs = write_log(tmp_path / "logs", [request_record(1)])
    assert main(["feedback", "export", str(logs), str(tmp_path / "out.jsonl")]) == 2
    assert "served.json is missing; pass --run RUN" in capsys.readouterr().err
    text_run = run_folder("text-run", [{"text": f"plain text number {i}"} for i in range(20)])
    with pytest.raises(RunError, match="reads its data as 'text'"):
        export_feedback(logs, tmp_path / "out.jsonl", run=text_run.root)
    pair_run = run_folder("pair-run", [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(20)])
    with pytest.raises(RunError, match=r"reads preference pairs, which a prompt and one answer do not make \("
                                       r"feedback export --pairs writes pairs\)"):
        export_feedback(logs, tmp_path / "out.jsonl", run=pair_run.root)


def test_refused_requests_are_counted_as_what_they_were(tmp_path, mapped_spam_run, request_record, write_log):
    refused = {"model": None, "latency_s": None, "ttft_s": None, "prompt_tokens": 0, "completion_tokens": 0,
               "finish_reason": None}
    records = [
        request_record(1, text="win cash now, reply to claim", label="spam", probability=0.9),
        request_record(2, status=401, route="/v1/classify", error="a valid API key is needed", **refused),
        request_record(3, status=401, route="/v1/feedback", error="a valid API key is needed", **refused),
        request_record(4, status=400, route="/v1/feedback", error="'eggs' is not one of the labels", **refused),
        request_record(5, status=400, route="/v1/chat/completions", error="messages is required", **refused),
        request_record(6, status=200, route="/v1/feedback", **refused),
        {"kind": "feedback", "id": "req-1", "rating": "up"},
        {"kind": "feedback", "id": "req-2", "rating": "up"},
    ]
    logs = write_log(tmp_path / "logs", records, served(mapped_spam_run))
    result = export_feedback(logs, tmp_path / "out.jsonl")
    assert result.written == 1
    assert result.skipped == {"a refused request (401 to /v1/classify)": 1,
                              "a refused request (401 to /v1/feedback)": 1,
                              "a refused request (400 to /v1/feedback)": 1,
                              "a refused request (400 to /v1/chat/completions)": 1,
                              "a request that asks for no answer (/v1/feedback)": 1}
    assert feedback.OTHER_MODEL not in result.skipped
