"""Hostile preference data and pair exports: every bad pair row is one DataError naming FILE:LINE (the data check
lists it as unreadable and reads on), a file with no usable pair is refused in one line, and the --pairs exports
refuse a bad target without touching a user's file."""

from __future__ import annotations

import json

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.splits import load_run_splits, load_splits
from tunesmith.errors import DataError
from tunesmith.monitor.request_log import RequestLog
from tunesmith.review.store import ReviewPlan, ReviewPrompt, ReviewStore, create_database, database_path

GOOD = {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "I cannot say."}
BAD_ROWS = [
    ({"prompt": "Name a colour.", "chosen": "Blue."}, "missing key 'rejected' for format preference"),
    ({**GOOD, "chosen": None}, "key 'chosen' is null (format preference)"),
    ({**GOOD, "rejected": {"role": "assistant", "content": 3}}, "rejected.content must be a string, got int"),
    ({**GOOD, "prompt": []}, "key 'prompt' must be a string or a non-empty list"),
    ({**GOOD, "prompt": [{"role": "tool", "content": "r"}, {"role": "user", "content": "q"}]},
     "prompt[0] is a tool result with no assistant tool call before it"),
    ({**GOOD, "prompt": [{"role": "system", "content": "S"}]}, "key 'prompt' has no user turn"),
    ({**GOOD, "chosen": {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f"}}]}},
     "chosen calls tools; the answers of a preference pair are text"),
    ({**GOOD, "prompt": [[[[["deep"]]]]]}, "prompt[0] must be an object with role and content"),
]


def test_each_bad_pair_is_listed_and_the_good_ones_are_checked(tmp_path, cli, tiny_model_dir):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in [GOOD, *(bad for bad, _ in BAD_ROWS), GOOD]))
    code, out, error = cli("data", "check", str(path), "--json", "--set", f"model.name={tiny_model_dir}")
    report = json.loads(out)
    assert code == 2 and error == "" and report["format"] == "preference"
    assert report["unreadable_count"] == len(BAD_ROWS)
    for line, ((_, problem), listed) in enumerate(zip(BAD_ROWS, report["unreadable"]), start=2):
        assert listed.startswith(f"{path}:{line}: ") and problem in listed
    assert sum(split["rows"] for split in report["splits"].values()) == 2
    assert [finding["kind"] for finding in report["findings"]] == ["duplicate"]  # the second GOOD repeats the first


def test_a_run_stops_at_the_first_bad_pair(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(BAD_ROWS[1][0]) + "\n")
    with pytest.raises(DataError, match=r"pairs\.jsonl:2: key 'chosen' is null"):
        load_splits(DataConfig(train=str(path), split={"validation": 0, "test": 0}))


def test_pairs_are_not_streamed(tmp_path, error_of):
    for name in ("train", "validation", "test"):
        (tmp_path / f"{name}.jsonl").write_text(json.dumps(GOOD) + "\n")
    files = {name: str(tmp_path / f"{name}.jsonl") for name in ("train", "validation", "test")}
    assert error_of(lambda: load_run_splits(DataConfig(**files, streaming=True))) == (
        "config: data.streaming: preference pairs are tokenized and held in memory, not streamed (turn "
        "data.streaming off)")


def test_preference_format_on_other_rows_names_the_missing_key(tmp_path, error_of):
    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps({"prompt": "p", "completion": "c"}) + "\n")
    message = error_of(lambda: load_splits(DataConfig(train=str(path), format="preference",
                                                      split={"validation": 0, "test": 0})))
    assert message.startswith(f"{path}:1: missing key 'chosen' for format preference; the row has keys: prompt, "
                              "completion")


def test_a_csv_without_the_rejected_column_is_refused_in_one_line(tmp_path, cli, tiny_model_dir):
    path = tmp_path / "pairs.csv"
    path.write_text("prompt,chosen,rejected_answer\nq,a,b\n")
    code, _, error = cli("data", "check", str(path), "--set", f"model.name={tiny_model_dir}", "--set",
                         "data.format=preference")
    assert code == 2 and error.startswith(f"tunesmith: error: {path}:2: missing key 'rejected' for format preference")


@pytest.fixture()
def review_run(tmp_path):
    """A run folder holding a review of one prompt, tuned vs base, reviewer ann (as `review create` leaves it)."""
    prompt = ReviewPrompt(location="test.jsonl:1", system=None, prompt="Name a colour.", reference=None, label=None,
                          answers={"tuned": "Blue.", "base": "I cannot say."})
    plan = ReviewPlan(models=[("tuned", "tuned", None), ("base", "base", None)], prompts=[prompt],
                      items=[(0, "tuned", "base")], queues={"ann": [(0, "tuned", "base")]}, rubric=[],
                      show_reference=False)
    path = database_path(tmp_path / "run")
    path.parent.mkdir(parents=True)
    create_database(path, plan)
    return tmp_path / "run"


def test_review_pairs_refuse_csv_and_a_record_of_the_run(review_run, cli):
    code, _, error = cli("review", "export", str(review_run), "--pairs", "--format", "csv")
    assert code != 0 and error == ("tunesmith: error: config: --format: pairs are written as JSON Lines (leave out "
                                   "--format csv)")
    code, _, error = cli("review", "export", str(review_run))
    assert code != 0 and "--format: review export needs --format csv or jsonl (or --pairs)" in error
    code, _, error = cli("review", "export", str(review_run), "--pairs", "--out", str(review_run / "review"))
    assert code != 0 and error.endswith("is a folder (name a file to write)")
    with ReviewStore.open(review_run) as store:
        store.judge("ann", 1, "a")
    code, out, error = cli("review", "export", str(review_run), "--pairs")
    assert code == 0 and error == "" and out.startswith("wrote 1 pair (preference: prompt, chosen, rejected) to ")
    assert json.loads((review_run / "review_pairs.jsonl").read_text())["chosen"] == "Blue."


def test_feedback_pairs_never_replace_a_file(tmp_path, cli):
    log = RequestLog(tmp_path / "logs")
    log.write({"kind": "request", "id": "req-1", "time": "2026-01-01T00:00:00+00:00", "model": "tuned",
               "route": "/v1/chat/completions", "status": 200, "messages": [{"role": "user", "content": "Hi"}],
               "answer": "Go away."})
    log.write({"kind": "feedback", "id": "req-1", "rating": "down", "correction": "Hi!"})
    log.close()
    out = tmp_path / "mine.jsonl"
    out.write_text("keep me")
    code, _, error = cli("feedback", "export", str(tmp_path / "logs"), str(out), "--pairs")
    assert code != 0 and "mine.jsonl already exists; feedback export does not replace a file unless asked" in error
    assert out.read_text() == "keep me"
    code, _, error = cli("feedback", "export", str(tmp_path / "logs"), str(tmp_path / "pairs.csv"), "--pairs")
    assert code != 0 and "training rows are written as JSON Lines" in error
    code, _, _ = cli("feedback", "export", str(tmp_path / "logs"), str(out), "--pairs", "--overwrite")
    assert code == 0 and json.loads(out.read_text()) == {"prompt": "Hi", "chosen": "Hi!", "rejected": "Go away."}
