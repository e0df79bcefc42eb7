"""`tunesmith feedback export --pairs`: a correction beats the served answer, an answer rated down loses to the
accepted answers for its prompt; what gives no pair is counted; the file reads back as preference rows."""

from __future__ import annotations

from tunesmith.cli import main
from tunesmith.config.schema import DataConfig
from tunesmith.data.pair_rows import REPEAT, SAME_ANSWERS
from tunesmith.data.splits import load_splits
from tunesmith.json_files import read_jsonl
from tunesmith.monitor import feedback, feedback_pairs
from tunesmith.monitor.feedback_pairs import export_feedback_pairs


def user(content: str) -> dict:
    return {"role": "user", "content": content}


def chat_log(request_record) -> list[dict]:
    return [
        request_record(1, messages=[user("Name a colour.")], answer="Blu."),
        request_record(2, messages=[user("Name a colour.")], answer="Blue."),
        request_record(3, messages=[user("Name a colour.")], answer="Green, I think, or maybe not."),
        request_record(4, messages=[{"role": "system", "content": "Be brief."}, user("Name a planet.")],
                       answer="The planet Mars, fourth from the sun."),
        request_record(5, messages=[user("Hi"), {"role": "assistant", "content": "Hello!"}, user("Name a city.")],
                       answer="Rome."),
        request_record(6, messages=[user("Name a bird.")], answer="A cat."),
        request_record(7, messages=[user("Name a fish.")], answer="Trout."),
        request_record(8, messages=[user("Name a tree.")], answer="Oak."),
        request_record(9, status=500, error="timeout", messages=[user("Name a tree.")]),
        request_record(10, messages=[user("Name a fish.")], answer="Salmon."),
        request_record(11, messages=[user("Name a dog.")], answer="Rex."),
        {"kind": "feedback", "id": "req-1", "rating": "down", "correction": "Blue."},
        {"kind": "feedback", "id": "req-2", "rating": "up"},
        {"kind": "feedback", "id": "req-3", "rating": "down"},
        {"kind": "feedback", "id": "req-4", "rating": "down", "correction": "Mars."},
        {"kind": "feedback", "id": "req-5", "rating": "down", "correction": "Paris."},
        {"kind": "feedback", "id": "req-6", "rating": "down"},
        {"kind": "feedback", "id": "req-7", "rating": "up"},
        {"kind": "feedback", "id": "req-9", "rating": "down"},
        {"kind": "feedback", "id": "req-11", "rating": "down", "correction": "Rex. "},
        {"kind": "feedback", "id": "req-gone", "rating": "up"},
    ]


def test_corrections_and_accepted_answers_beat_the_rejected_ones(tmp_path, request_record, write_log):
    logs = write_log(tmp_path / "logs", chat_log(request_record))
    out = tmp_path / "pairs.jsonl"
    result = export_feedback_pairs(logs, out)
    assert read_jsonl(out) == [
        {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Blu."},
        {"prompt": "Name a planet.", "chosen": "Mars.", "rejected": "The planet Mars, fourth from the sun.",
         "system": "Be brief."},
        {"prompt": [user("Hi"), {"role": "assistant", "content": "Hello!"}, user("Name a city.")],
         "chosen": [{"role": "assistant", "content": "Paris."}],
         "rejected": [{"role": "assistant", "content": "Rome."}]},
        {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Green, I think, or maybe not."}]
    # req-2's accepted "Blue." and req-1's correction are one answer: req-3 loses to it once
    assert result.skipped == {SAME_ANSWERS: 1, feedback_pairs.NOTHING_BETTER: 1, feedback_pairs.NOTHING_WORSE: 1,
                              feedback.FAILED: 1, feedback_pairs.NO_FEEDBACK: 2, feedback.NO_REQUEST: 1}
    assert result.written == 4 and result.exit_code == 0
    assert result.render("request").splitlines()[:2] == [
        f"wrote 4 pairs (preference: prompt, chosen, rejected) to {out}", "left out 7 requests:"]
    splits = load_splits(DataConfig(train=str(out), split={"validation": 0, "test": 0}))
    assert splits.format == "preference" and [e.rejected["content"] for e in splits.train] == [
        "Blu.", "The planet Mars, fourth from the sun.", "Rome.", "Green, I think, or maybe not."]
    assert splits.train[2].messages[-2:] == (user("Name a city."), {"role": "assistant", "content": "Paris."})


def test_repeated_pairs_are_written_once(tmp_path, request_record, write_log):
    records = [request_record(n, messages=[user("Name a colour.")], answer="Blu.") for n in (1, 2)]
    records += [{"kind": "feedback", "id": f"req-{n}", "rating": "down", "correction": "Blue."} for n in (1, 2)]
    result = export_feedback_pairs(write_log(tmp_path / "logs", records), tmp_path / "pairs.jsonl")
    assert result.written == 1 and result.skipped == {REPEAT: 1}


def test_another_models_answers_are_left_out(tmp_path, request_record, write_log, run_folder):
    run = run_folder("chat-run", [{"prompt": "p", "chosen": "a", "rejected": "b"}] * 10)
    manifest = {"models": {"tuned": {"run": str(run.root), "model": "merged"}}, "primary": "tuned", "shadow": None}
    records = [request_record(1, messages=[user("Name a colour.")], answer="Blu."),
               request_record(2, model="base", messages=[user("Name a colour.")], answer="Red."),
               {"kind": "feedback", "id": "req-1", "rating": "down", "correction": "Blue."},
               {"kind": "feedback", "id": "req-2", "rating": "down", "correction": "Blue."}]
    result = export_feedback_pairs(write_log(tmp_path / "logs", records, manifest), tmp_path / "pairs.jsonl")
    assert result.written == 1 and result.skipped == {feedback.OTHER_MODEL: 1}


def test_nothing_to_pair_writes_nothing_and_exits_1(tmp_path, request_record, write_log, capsys):
    records = [request_record(1, messages=[user("Name a colour.")], answer="Blue."),
               {"kind": "feedback", "id": "req-1", "rating": "up"}]
    logs = write_log(tmp_path / "logs", records)
    out = tmp_path / "pairs.jsonl"
    assert main(["feedback", "export", str(logs), str(out), "--pairs"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "no pair found: wrote nothing", "left out 1 request:", f"  {feedback_pairs.NOTHING_WORSE}: 1"]
    assert not out.exists()


def test_min_rating_does_not_apply_to_pairs(tmp_path, request_record, write_log, cli):
    logs = write_log(tmp_path / "logs", [request_record(1, messages=[user("Hi")], answer="Hello")])
    code, _, error = cli("feedback", "export", str(logs), str(tmp_path / "pairs.jsonl"), "--pairs", "--min-rating",
                         "none")
    assert code != 0 and error == ("tunesmith: error: config: --min-rating: pairs are made of rated and corrected "
                                   "answers only (leave out --min-rating with --pairs)")
