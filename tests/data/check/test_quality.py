"""Each finder of the data check: found on a crafted split at the right rows, and silent on clean data."""

from __future__ import annotations

import json

import pytest

from tunesmith.config.schema import CheckConfig
from tunesmith.data.check.data_report import CheckSettings, check_data
from tunesmith.data.check.quality import copied_inputs, describe_character, length_outliers
from tunesmith.data.example import Example, Splits

ANIMALS = ["cat", "dog", "owl", "fox", "bee", "elk", "yak", "emu", "ant", "bat", "cow", "pig"]


def qa(location: str, question: str, answer: str, label: str | None = None, system: str | None = None) -> Example:
    messages = ({"role": "user", "content": question}, {"role": "assistant", "content": answer})
    if system:
        messages = ({"role": "system", "content": system}, *messages)
    return Example(messages=messages, location=location, label=label)


def clean_rows(prefix: str = "t", count: int = 12) -> list[Example]:
    """Rows with distinct questions and answers of similar length: nothing to find."""
    return [
        qa(f"{prefix}.jsonl:{i + 1}", f"Describe the {animal} in one short sentence please.",
           f"The {animal} is an animal number {i} that lives somewhere.")
        for i, animal in enumerate(ANIMALS[:count])
    ]


def report_of(tokenizer, train, validation=(), test=(), fmt="prompt_completion", labels=None, **settings):
    splits = Splits(train=list(train), validation=list(validation), test=list(test), format=fmt, labels=labels)
    return check_data(splits, CheckSettings(tokenizer, 512, check=CheckConfig(**settings)))


def kinds(report) -> dict[tuple[str, str], object]:
    return {(f.kind, f.split): f for f in report.findings}


def test_clean_rows_have_no_findings(tiny_tokenizer):
    report = report_of(tiny_tokenizer, clean_rows(), test=clean_rows("s")[:0])
    assert report.findings == [] and report.exit_code == 0


def test_near_duplicates_keep_the_first_row_and_skip_exact_copies(tiny_tokenizer):
    rows = clean_rows()
    rows[3] = qa("t.jsonl:4", "Describe the CAT in one short sentence, please!!",
                 "The cat is an animal number 0 that lives somewhere.")  # row 1 up to case and punctuation
    rows[5] = rows[0].__class__(messages=rows[0].messages, location="t.jsonl:6")  # an exact copy of row 1
    report = report_of(tiny_tokenizer, rows)
    found = kinds(report)
    assert found["near_duplicate", "train"].locations == ["t.jsonl:4 (near t.jsonl:1, similarity 1.00)"]
    assert found["duplicate", "train"].locations == ["t.jsonl:6 (same as t.jsonl:1)"]
    assert set(found) == {("near_duplicate", "train"), ("duplicate", "train")}


def test_leakage_exact_and_near(tiny_tokenizer):
    train = clean_rows()
    test = [
        qa("s.jsonl:1", "Describe the dog in one short sentence please.", "A different answer entirely here."),
        qa("s.jsonl:2", "Describe the owl in one short sentence please!", "The owl is an animal number 2 that lives"
                                                                          " somewhere."),  # near train row 3
        qa("s.jsonl:3", "What is the capital of France?", "Paris."),
    ]
    found = kinds(report_of(tiny_tokenizer, train, test=test))
    leak = found["leakage", "train/test"]
    assert leak.count == 2
    assert leak.locations[0] == "s.jsonl:1 (same prompt as t.jsonl:2)"
    assert leak.locations[1].startswith("s.jsonl:2 (prompt near t.jsonl:3, similarity 1.00")
    assert "1 with the same prompt, 1 near" in leak.message
    assert ("leakage", "train/validation") not in found


def test_conflicting_labels_flag_the_minority_and_ties(tiny_tokenizer):
    def row(line, text, label):
        return qa(f"t.jsonl:{line}", f"Classify the message.\n\n{text}", label, label=label)

    train = [row(1, "win a prize", "spam"), row(2, "hello there", "ham"), row(3, "Win a prize!", "spam"),
             row(4, "win a prize", "ham"), row(5, "see you soon", "ham"), row(6, "see you soon", "spam"),
             row(7, "lunch at noon", "ham")]
    report = report_of(tiny_tokenizer, train, fmt="classification", labels=["ham", "spam"])
    conflict = kinds(report)["conflicting_label", "train"]
    # "win a prize": spam x2 vs ham x1 -> line 4 disagrees; "see you soon": a tie -> both rows.
    assert [location.split(" ")[0] for location in conflict.locations] == ["t.jsonl:4", "t.jsonl:5", "t.jsonl:6"]
    assert conflict.count == 3 and "2 inputs" in conflict.message
    # The same prompt with two answers is fine for generation formats.
    generation = [qa("t.jsonl:1", "Write a poem.", "Roses are red."), qa("t.jsonl:2", "Write a poem.", "Waves.")]
    assert not any(f.kind == "conflicting_label" for f in report_of(tiny_tokenizer, generation).findings)


def test_label_imbalance_on_train_only(tiny_tokenizer):
    def row(line, label):
        return qa(f"t.jsonl:{line}", f"Classify.\n\nmessage {ANIMALS[line % 12]} {line}", label, label=label)

    train = [row(i, "ham") for i in range(1, 11)] + [row(11, "spam")]
    test = [row(20, "spam")] * 1
    report = report_of(tiny_tokenizer, train, test=test, fmt="classification", labels=["ham", "spam"],
                       imbalance_ratio=10)
    imbalance = kinds(report)[("label_imbalance", "train")]
    assert imbalance.count == 1 and "'ham' has 10 rows" in imbalance.message and "'spam' 1" in imbalance.message
    assert ("label_imbalance", "test") not in kinds(report)  # held-out splits only measure
    balanced = report_of(tiny_tokenizer, train, fmt="classification", labels=["ham", "spam"], imbalance_ratio=11)
    assert ("label_imbalance", "train") not in kinds(balanced)


def test_copied_input_equal_or_most_of_the_prompt_but_not_a_short_span():
    rows = [
        qa("t:1", "Repeat after me: the cat sat on the mat.", "The cat sat on the mat."),  # 6 of 8 words
        qa("t:2", "Hello   world!", "hello\nWORLD!"),  # equal but for case and whitespace
        qa("t:3", "The Panthers defense gave up just 308 points, ranking sixth. How many points?", "308"),
        qa("t:4", "Translate: a man", "Ein Mann"),
        qa("t:5", "Add commas: She was a teacher and a coach", "She was a teacher, and a coach."),  # the task
    ]
    found = copied_inputs("train", rows, "prompt_completion")
    assert found.locations == ["t:1 (copied from its prompt)", "t:2 (equals its prompt)"]
    assert copied_inputs("train", rows, "classification") is None


def test_length_outliers_use_tukey_fences():
    rows = [qa(f"t:{i}", "q", "a") for i in range(1, 13)]
    lengths = [20, 21, 22, 20, 21, 22, 20, 21, 22, 21, 80, 2]
    found = length_outliers("train", rows, lengths, factor=3.0)
    # Quartiles 20.75 and 22, so the fences are 20.75 - 3 * 1.25 and 22 + 3 * 1.25.
    assert found.locations == ["t:11 (80 tokens)", "t:12 (2 tokens)"]
    assert length_outliers("train", rows[:9], lengths[:9], factor=3.0) is None  # too few rows to say


def test_non_printable_characters_are_named(tiny_tokenizer):
    rows = clean_rows()
    rows[2] = qa("t.jsonl:3", "Describe the owl\u200b in one short sentence please.", "Fine\ufffd answer\x00.")
    found = kinds(report_of(tiny_tokenizer, rows))[("non_printable", "train")]
    assert found.locations == ["t.jsonl:3 (U+200B ZERO WIDTH SPACE ×1, U+FFFD REPLACEMENT CHARACTER ×1, "
                               "U+0000 control character ×1)"]
    assert describe_character("\t") == "U+0009 control character"  # named, though tab itself is allowed


def test_empty_answers_in_any_learned_turn(tiny_tokenizer):
    rows = clean_rows()
    turns = ({"role": "user", "content": "Hi"}, {"role": "assistant", "content": " \n"},
             {"role": "user", "content": "Still there?"}, {"role": "assistant", "content": "Yes."})
    rows[4] = Example(messages=turns, location="t.jsonl:5")
    found = kinds(report_of(tiny_tokenizer, rows))
    assert found["empty_output", "train"].locations == ["t.jsonl:5"]


def test_classification_instruction_does_not_make_rows_alike(tiny_tokenizer):
    instruction = "Classify the following text as ham or spam. Reply with the label only, nothing else at all."
    train = [qa(f"t:{i}", f"{instruction}\n\n{animal} {i}", "ham", label="ham") for i, animal in enumerate(ANIMALS)]
    report = report_of(tiny_tokenizer, train, fmt="classification", labels=["ham"])
    assert not any(f.kind == "near_duplicate" for f in report.findings)


def test_report_json_has_every_finding_with_the_rest_counted(tiny_tokenizer):
    rows = [qa(f"t:{i}", "Same question?", "Same answer.") for i in range(1, 30)]
    summary = json.loads(json.dumps(report_of(tiny_tokenizer, rows).to_dict()))
    [duplicate] = summary["findings"]
    assert duplicate["count"] == 28 and len(duplicate["locations"]) == 20 and duplicate["more"] == 8
    assert summary["sample"]["round_trip"] == "ok"
    assert summary["splits"]["train"]["length_histogram"]["counts"] == [29]


@pytest.mark.parametrize("name", ["sms_spam_train.jsonl"])
def test_real_data_duplicates_and_leakage_match_a_brute_force_count(shared_data, tiny_tokenizer, name):
    from tunesmith.config.schema import DataConfig
    from tunesmith.data.splits import load_splits

    config = DataConfig(train=str(shared_data / name), test=str(shared_data / "sms_spam_test.jsonl"),
                        validation=str(shared_data / "sms_spam_test.jsonl"), max_eval_rows=200)
    splits = load_splits(config)
    report = check_data(splits, CheckSettings(tiny_tokenizer, 512))
    found = kinds(report)
    texts = [json.loads(line)["text"] for line in (shared_data / name).read_text(encoding="utf-8").splitlines()]
    assert found["duplicate", "train"].count == len(texts) - len(set(texts))
    test_texts = [e.messages[-2]["content"] for e in splits.test]
    train_prompts = {e.messages[-2]["content"] for e in splits.train}
    leak = found["leakage", "train/test"]
    assert leak.message.startswith(f"{leak.count} rows of test")
    assert f"{sum(text in train_prompts for text in test_texts)} with the same prompt" in leak.message
    assert not any(f.kind == "template" for f in report.findings)
