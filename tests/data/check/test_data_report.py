"""The data check: what every finding reports, the split tables, unreadable rows (listed up to max_errors, the
rest counted, the readable rows still checked), exit codes, and the checks of a run config and of one file."""

from __future__ import annotations

import json

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.check.data_report import CheckSettings, check_data, check_file, run_check
from tunesmith.data.example import Example, Splits
from tunesmith.data.splits import load_splits
from tunesmith.data.tokenize import prompt_token_ids, tokenize_example
from tunesmith.errors import DataError

LONG_PROMPT = "The quick brown fox jumps over the lazy dog. " * 6


def qa(location: str, question: str, answer: str, label: str | None = None) -> Example:
    messages = ({"role": "user", "content": question}, {"role": "assistant", "content": answer})
    return Example(messages=messages, location=location, label=label)


def planted_splits() -> Splits:
    train = [
        qa("t.jsonl:1", "What is the capital of France?", "Paris."),
        qa("t.jsonl:2", "Write a short poem.", "The waves roll in."),
        qa("t.jsonl:3", "What is the capital of France?", "Paris."),  # exact duplicate of line 1
        qa("t.jsonl:4", "Say nothing.", "  "),  # empty answer
        qa("t.jsonl:5", LONG_PROMPT, "Ein Mann fährt Fahrrad."),  # the only row longer than max_length
        qa("t.jsonl:6", "What is the capital of France?", "It is Paris."),  # same prompt, other answer: no duplicate
    ]
    validation = [qa("v.jsonl:1", "Hey, are we still meeting?", "Yes.")]
    test = [
        qa("s.jsonl:1", "Write a short poem.", "The tide goes out."),  # its prompt is in train (line 2)
        qa("s.jsonl:2", "Are we meeting for lunch?", "Yes."),
    ]
    return Splits(train=train, validation=validation, test=test, format="prompt_completion",
                  files={"train": "t.jsonl", "validation": "v.jsonl", "test": "s.jsonl"})


def test_planted_problems_are_found(tiny_tokenizer):
    splits = planted_splits()
    long_row = splits.train[4]
    max_length = len(prompt_token_ids(tiny_tokenizer, long_row.prompt_messages))  # the answer starts past the end
    others = [e for e in splits.train + splits.validation + splits.test if e is not long_row]
    assert max(len(tokenize_example(e, tiny_tokenizer, 10_000).input_ids) for e in others) <= max_length

    report = check_data(splits, CheckSettings(tiny_tokenizer, max_length))

    findings = {(f.kind, f.split): f for f in report.findings}
    assert sorted(findings) == [
        ("duplicate", "train"), ("empty_output", "train"), ("leakage", "train/test"), ("truncated", "train"),
    ]
    assert findings["duplicate", "train"].locations == ["t.jsonl:3 (same as t.jsonl:1)"]
    assert findings["empty_output", "train"].locations == ["t.jsonl:4"]
    assert findings["leakage", "train/test"].locations == ["s.jsonl:1 (same prompt as t.jsonl:2)"]
    answer_tokens = len(tiny_tokenizer("Ein Mann fährt Fahrrad.", add_special_tokens=False)["input_ids"])
    assert findings["truncated", "train"].locations == [f"t.jsonl:5 ({answer_tokens + 1} supervised tokens lost)"]
    assert all(f.count == 1 for f in report.findings)
    assert report.has_problems

    train = report.splits[0]
    assert (train.name, train.rows, train.truncated_rows, train.rows_without_supervision) == ("train", 6, 1, 1)
    assert train.supervised_tokens_lost == answer_tokens + 1  # the whole answer and its EOS
    full_length = len(tokenize_example(long_row, tiny_tokenizer, 10_000).input_ids)
    assert train.tokens["max"] == full_length > max_length  # lengths are reported before truncation
    assert [s.rows for s in report.splits] == [6, 1, 2]


def test_length_stats_are_min_mean_median_p95_max(tiny_tokenizer):
    examples = [qa(f"t.jsonl:{i}", "Hi" + " there" * i, "Ok.") for i in range(1, 5)]
    lengths = [len(tokenize_example(e, tiny_tokenizer, 10_000).input_ids) for e in examples]
    assert lengths == sorted(lengths) and len(set(lengths)) == 4
    splits = Splits(train=examples, validation=[], test=[], format="prompt_completion")
    tokens = check_data(splits, CheckSettings(tiny_tokenizer, 512)).splits[0].tokens
    # p95 of 4 sorted values interpolates 0.95 * 3 = 2.85 of the way: x2 + 0.85 * (x3 - x2)
    p95 = lengths[2] + 0.85 * (lengths[3] - lengths[2])
    assert tokens == {
        "min": lengths[0], "mean": round(sum(lengths) / 4, 1), "median": (lengths[1] + lengths[2]) / 2,
        "p95": round(p95, 1), "max": lengths[3],
    }


def test_label_balance_and_a_clean_report(tiny_tokenizer):
    def row(i, label):
        return qa(f"t.jsonl:{i}", f"Classify message {i}.", label, label=label)

    train = [row(1, "ham"), row(2, "spam"), row(3, "ham"), row(4, "ham")]
    test = [row(5, "spam")]
    splits = Splits(train=train, validation=[], test=test, format="classification", labels=["ham", "spam"])
    report = check_data(splits, CheckSettings(tiny_tokenizer, 512))
    assert not report.has_problems and report.findings == []
    by_name = {s.name: s for s in report.splits}
    assert by_name["train"].label_counts == {"ham": 3, "spam": 1}
    assert by_name["train"].label_fractions == {"ham": 0.75, "spam": 0.25}
    assert by_name["validation"].label_counts == {"ham": 0, "spam": 0} and by_name["validation"].tokens is None
    assert by_name["test"].label_fractions == {"ham": 0.0, "spam": 1.0}
    summary = json.loads(json.dumps(report.to_dict()))
    assert summary["has_problems"] is False and summary["labels"] == ["ham", "spam"]
    assert summary["splits"]["train"]["label_counts"] == {"ham": 3, "spam": 1}
    assert list(summary["splits"]) == ["train", "validation", "test"]
    text = report.render()
    assert "No problems found." in text
    table = text.split("Label balance:\n")[1].split("\n\n")[0]
    balance = {cells[0]: cells[1:] for cells in ([cell.strip() for cell in line.split("|")]
                                                for line in table.splitlines()[2:] if "|" in line)}
    assert balance["train"] == ["3 (75.0%)", "1 (25.0%)"]
    assert balance["test"] == ["0 (0.0%)", "1 (100.0%)"]


def test_text_rows_overlap_on_their_whole_text(tiny_tokenizer):
    def text_row(location, text):
        return Example(messages=({"role": "user", "content": ""}, {"role": "assistant", "content": text}),
                       location=location)

    splits = Splits(train=[text_row("t:1", "one"), text_row("t:2", "two")], validation=[],
                    test=[text_row("s:1", "two"), text_row("s:2", "three")], format="text")
    overlaps = [f for f in check_data(splits, CheckSettings(tiny_tokenizer, 512)).findings if f.kind == "leakage"]
    assert [f.locations for f in overlaps] == [["s:1 (same prompt as t:2)"]]


def test_check_file_checks_one_unsplit_file(tmp_path, tiny_tokenizer):
    path = tmp_path / "sms.csv"
    path.write_text("text,label\nhello,ham\nwin cash,spam\nhello,ham\n", encoding="utf-8")
    report = check_file(path, tiny_tokenizer, 512, DataConfig(path=str(path)))
    assert [(s.name, s.rows, s.file) for s in report.splits] == [("sms.csv", 3, str(path))]
    assert report.format == "classification" and report.labels == ["ham", "spam"]
    assert [(f.kind, f.locations) for f in report.findings] == [("duplicate", [f"{path}:4 (same as {path}:2)"])]


def test_run_check_exit_codes_on_a_data_file(tmp_path, tiny_model_dir, write_jsonl):
    model = [f"model.name={tiny_model_dir}"]
    clean = write_jsonl(tmp_path / "clean.jsonl", [{"prompt": "Hi", "completion": "Hello"},
                                                   {"prompt": "Bye", "completion": "Goodbye"}])
    text, code = run_check(clean, model, as_json=False)
    assert code == 0 and "No problems found." in text and "clean.jsonl |    2 |" in text

    dup = write_jsonl(tmp_path / "dup.jsonl", [{"prompt": "Hi", "completion": "Hello"}] * 2)
    text, code = run_check(dup, model, as_json=True)
    assert code == 1
    summary = json.loads(text)
    assert [(f["kind"], f["count"], f["locations"]) for f in summary["findings"]] == [
        ("duplicate", 1, [f"{dup}:2 (same as {dup}:1)"])
    ]
    assert {name: s["rows"] for name, s in summary["splits"].items()} == {"dup.jsonl": 2}  # not split


def test_run_check_on_a_config_and_on_unreadable_input(tmp_path, tiny_model_dir, write_jsonl):
    write_jsonl(tmp_path / "train.jsonl", [{"text": f"message {i}", "label": i % 2} for i in range(10)])
    config = tmp_path / "run.yaml"
    config.write_text(
        f"model:\n  name: {tiny_model_dir}\ndata:\n  train: train.jsonl\n  label_names: [ham, spam]\n", encoding="utf-8"
    )
    text, code = run_check(str(config), ["data.max_length=16"], as_json=True)
    summary = json.loads(text)
    assert code == 1  # max_length 16 truncates every row
    assert {name: s["rows"] for name, s in summary["splits"].items()} == {"train": 8, "validation": 1, "test": 1}
    assert summary["labels"] == ["ham", "spam"]

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "a", "completion": "b"}\n{oops\n', encoding="utf-8")
    text, code = run_check(str(broken), [f"model.name={tiny_model_dir}"], as_json=False)
    assert code == 2 and f"  {broken}:2: malformed JSON" in text  # listed; the readable row is still checked


def test_findings_name_at_most_20_rows_but_count_all(tiny_tokenizer):
    examples = [qa(f"t.jsonl:{i}", "Same question?", "Same answer.") for i in range(1, 27)]
    report = check_data(Splits(train=examples, validation=[], test=[], format="prompt_completion"),
                        CheckSettings(tiny_tokenizer, 512))
    [duplicate] = report.findings
    assert duplicate.count == 25
    assert duplicate.locations == [f"t.jsonl:{i} (same as t.jsonl:1)" for i in range(2, 22)]
    lines = report.render().splitlines()
    start = lines.index("- duplicate in train: 25 rows repeating an earlier row exactly")
    assert lines[start + 1] == "    t.jsonl:2 (same as t.jsonl:1)"
    assert lines[start + 21] == "    ... and 5 more"


def good(i: int) -> str:
    return json.dumps({"prompt": f"Question number {i} about animals?", "completion": f"Answer {i}."})


def test_unreadable_rows_are_listed_up_to_max_errors(tmp_path, tiny_model_dir, write_jsonl):
    lines = []
    for i in range(1, 41):
        lines.append(good(i) if i % 4 else '{"prompt": "broken"')  # every 4th line is bad JSON
    lines[1] = json.dumps({"prompt": "Question?", "completion": 3})  # line 2: wrong type
    path = write_jsonl(tmp_path / "mixed.jsonl", lines)
    model = f"model.name={tiny_model_dir}"

    text, code = run_check(path, [model, "data.check.max_errors=4"], as_json=False)

    assert code == 2
    listed = text.split("Unreadable rows (11, skipped; the rest is checked):\n")[1].split("\n\n")[0].splitlines()
    assert listed[0] == f"  {path}:2: key 'completion' must be a string, got int 3"
    assert [line.split(": ")[0] for line in listed[1:4]] == [f"  {path}:4", f"  {path}:8", f"  {path}:12"]
    assert listed[4] == "  ... and 7 more"
    assert "mixed.jsonl |   29 |" in text  # the 29 readable rows were checked
    assert "No problems found in the readable rows." in text

    summary = json.loads(run_check(path, [model], as_json=True)[0])
    assert summary["unreadable_count"] == 11 and len(summary["unreadable"]) == 11
    assert summary["has_problems"] is True


def test_exit_codes_clean_findings_unreadable(tmp_path, tiny_model_dir, write_jsonl):
    model = [f"model.name={tiny_model_dir}"]
    clean = write_jsonl(tmp_path / "clean.jsonl", [good(1), good(2)])
    assert run_check(clean, model, as_json=False)[1] == 0
    findings = write_jsonl(tmp_path / "dup.jsonl", [good(1), good(1)])
    assert run_check(findings, model, as_json=False)[1] == 1
    unreadable = write_jsonl(tmp_path / "bad.jsonl", [good(1), good(2), "[1, 2]"])
    text, code = run_check(unreadable, model, as_json=False)
    assert code == 2 and f"{unreadable}:3: expected a JSON object" in text


def test_a_run_still_stops_at_the_first_bad_row(tmp_path, write_jsonl):
    path = write_jsonl(tmp_path / "train.jsonl", [good(i) for i in range(1, 20)] + ["{oops", "{oops"])
    with pytest.raises(DataError, match=r"train\.jsonl:20: malformed JSON"):
        load_splits(DataConfig(path=path))


def test_a_file_with_no_readable_row_is_an_error(tmp_path, tiny_model_dir, write_jsonl):
    path = write_jsonl(tmp_path / "all_bad.jsonl", ["{oops", "[1]"])
    with pytest.raises(DataError, match="all_bad.jsonl"):
        run_check(path, [f"model.name={tiny_model_dir}"], as_json=False)


def test_a_run_config_lists_unreadable_rows_and_checks_the_rest(tmp_path, tiny_model_dir, write_jsonl):
    lines = [good(i) for i in range(1, 31)]
    lines[6] = "{oops"
    lines[19] = json.dumps({"prompt": "Question?"})
    write_jsonl(tmp_path / "train.jsonl", lines)
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {{name: {tiny_model_dir}}}\ndata: {{path: train.jsonl}}\n", encoding="utf-8")

    summary = json.loads(run_check(str(config), [], as_json=True)[0])

    assert summary["unreadable_count"] == 2
    assert [entry.split(": ")[0].rsplit("/", 1)[-1] for entry in summary["unreadable"]] == [
        "train.jsonl:7", "train.jsonl:20"]
    assert sum(split["rows"] for split in summary["splits"].values()) == 28
    assert run_check(str(config), [], as_json=False)[1] == 2


def test_weighted_repeats_are_not_reported_as_duplicates(tmp_path, tiny_tokenizer):
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": f"Tell me fact {i} about owls.", "completion": f"Fact {i}."})
                              for i in range(20)) + "\n", encoding="utf-8")
    config = DataConfig(sources=[{"path": str(path), "weight": 3}], split={"validation": 0.0, "test": 0.0})
    splits = load_splits(config)
    assert len(splits.train) == 60
    report = check_data(splits, CheckSettings(tiny_tokenizer, 64))
    assert not [f for f in report.findings if f.kind in ("duplicate", "near_duplicate")]
    assert report.splits[0].rows == 20


def test_malformed_conversations_are_rows_with_problems_not_a_template_error(tmp_path, tiny_model_dir, write_jsonl):
    path = write_jsonl(tmp_path / "chats.jsonl", [
        {"messages": [{"role": "assistant", "content": "Hello!"}]},
        {"messages": "not a list"},
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]},
    ])
    text, code = run_check(path, [f"model.name={tiny_model_dir}"], as_json=False)
    assert code == 2 and "chat template" not in text
    assert f"  {path}:1: messages[0] is an assistant turn with no user turn before it" in text
    assert f"  {path}:2: key 'messages' must be a non-empty list of {{role, content}} objects" in text
    bad_only = write_jsonl(tmp_path / "chats.jsonl", [{"messages": [{"role": "assistant", "content": "Hi"}]},
                                                      {"messages": "not a list"}])
    with pytest.raises(DataError, match=r"chats\.jsonl:1: messages\[0\] is an assistant turn.*no row of .* is usable") \
            as caught:
        run_check(bad_only, [f"model.name={tiny_model_dir}"], as_json=False)
    assert caught.value.report.startswith("Data check: not one row can be used")
    assert f"  {path}:2: key 'messages' must be a non-empty list" in caught.value.report  # every bad row, listed


def test_a_config_whose_source_has_no_readable_row_is_one_clean_error(tmp_path, tiny_model_dir, write_jsonl):
    write_jsonl(tmp_path / "good.jsonl", [{"prompt": f"q{i}", "completion": f"a{i}"} for i in range(20)])
    write_jsonl(tmp_path / "bad.jsonl", ["{oops", "{oops"])
    config = tmp_path / "run.yaml"
    config.write_text(f"model: {{name: {tiny_model_dir}}}\n"
                      "data: {sources: [{path: good.jsonl}, {path: bad.jsonl}]}\n", encoding="utf-8")
    with pytest.raises(DataError) as caught:
        run_check(str(config), [], as_json=True)
    assert str(caught.value).startswith(f"{tmp_path / 'bad.jsonl'}:1: malformed JSON")
    assert "no row of" in str(caught.value)
    listed = json.loads(caught.value.report)["unreadable"]
    assert [entry.split(": ")[0] for entry in listed] == [f"{tmp_path / 'bad.jsonl'}:{line}" for line in (1, 2)]
