"""`tunesmith init`: the written config loads, names what was detected (format, columns, labels), keeps one comment
above each key taken from the schema, and runs as written (the data check passes; one test trains two steps);
an existing config is kept unless asked; a bad row is the one-line FILE:LINE error of the data check."""

from __future__ import annotations

import csv
import json
import random
import re

import pytest
import yaml

from tunesmith.cli import main
from tunesmith.config import load_config
from tunesmith.config.reference import key_summary
from tunesmith.data.check.data_report import run_check
from tunesmith.data.rows import Row
from tunesmith.starter import (
    LENGTH_MULTIPLE,
    MAX_LENGTH_CAP,
    choose_max_length,
    guess_columns,
    integer_label_names,
    write_starter_config,
)

WORDS = ("lunch tomorrow meeting notes office train station coffee garden dinner weekend movie ticket prize cash "
         "reward winner claim offer free call now mobile update camera urgent account bank transfer parcel "
         "delivery invoice holiday flight hotel booking family party birthday music").split()


def sentence(index: int) -> str:
    """A distinct seven-word sentence: no two share enough word 3-grams to be near duplicates."""
    return " ".join(random.Random(index).sample(WORDS, 7)).capitalize() + "."


def sms_rows(count: int) -> list[dict]:
    return [{"id": index, "sms": sentence(index), "category": ("ham", "spam")[index % 2]} for index in range(count)]


def comment_above(text: str, key: str) -> str:
    """The comment above the (last-level) key ``key`` of a written config, its wrapped lines joined into one."""
    name = key.rsplit(".", 1)[-1]
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if not re.match(rf"\s*(# )?{re.escape(name)}:", line):
            continue
        start = index
        while start > 0 and lines[start - 1].lstrip().startswith("# ") and \
                not re.match(r"\s*# [a-z_]+: ", lines[start - 1]):
            start -= 1
        comment = " ".join(line.strip().removeprefix("# ") for line in lines[start:index])
        if comment.startswith(key_summary(key)):
            return "# " + comment
    raise AssertionError(f"no comment above {key}")


@pytest.fixture()
def checked(default_model_dir):
    """``checked(config_path) -> exit code`` of `tunesmith data check` on a written config (the default model's
    tokenizer, which sized its max_length)."""
    return lambda path: run_check(str(path), [], as_json=False)[1]


def test_classification_with_common_key_names(tmp_path, write_jsonl, checked):
    data = write_jsonl(tmp_path / "messages.jsonl", sms_rows(30))
    starter = write_starter_config(data, out_path=tmp_path / "config.yaml")

    config = load_config(tmp_path / "config.yaml")
    assert config.data.path == data and config.data.format == "classification"
    assert config.data.columns == {"text": "sms", "label": "category"} and config.data.label_names is None
    assert config.data.split.validation == 0.1 and config.data.split.test == 0.1
    assert config.evaluate.task == "classification" and config.evaluate.metrics == ["accuracy", "precision",
                                                                                    "recall", "f1"]
    # training sizes the run and its validations to the rows it gets
    assert (config.train.epochs, config.train.eval_every, config.train.save_every) == ("auto", "auto", "auto")
    assert config.data.max_length % LENGTH_MULTIPLE == 0 and config.data.max_length >= starter.length_percentile

    text = starter.text
    assert "path: messages.jsonl" in text  # relative to the config's folder
    assert "columns: {text: sms, label: category}" in text  # in the order of the guess
    assert comment_above(text, "data.columns").endswith("text from `sms`, label from `category`; point a field at "
                                                        "another key to change it.")
    assert "\n  # system_prompt: " in text  # an example, commented out
    for key in ("model.name", "method", "data.path", "data.split.validation", "data.split.test", "data.format",
                "data.columns", "data.system_prompt", "data.max_length", "lora.r", "lora.alpha",
                "train.learning_rate", "train.epochs", "train.batch_size", "train.eval_every", "train.save_every",
                "evaluate.task", "evaluate.metrics", "output.dir"):
        assert comment_above(text, key)  # one comment line, the schema's summary first
    assert starter.label_counts == {data: {"ham": 15, "spam": 15}}
    assert checked(tmp_path / "config.yaml") == 0


def test_csv_integer_labels_named_by_a_column_with_a_test_file(tmp_path, checked):
    def write_csv(name, indices):
        with open(tmp_path / "data" / name, "w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(["text", "label", "label_text"])
            writer.writerows([sentence(i), i % 3, ("world", "sports", "business")[i % 3]] for i in indices)

    (tmp_path / "data").mkdir()
    (tmp_path / "configs").mkdir()
    write_csv("train.csv", range(36))
    write_csv("test.csv", range(100, 109))
    out = tmp_path / "configs" / "news.yaml"
    starter = write_starter_config(tmp_path / "data" / "train.csv", tmp_path / "data" / "test.csv", out)

    # The data lies outside the config's folder: absolute paths, not ../ chains.
    assert f"train: {tmp_path / 'data' / 'train.csv'}" in starter.text
    assert f"test: {tmp_path / 'data' / 'test.csv'}" in starter.text
    raw = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert raw["data"]["split"] == {"validation": 0.1} and "columns" not in raw["data"]
    config = load_config(out)
    assert config.data.train == str(tmp_path / "data" / "train.csv") and config.data.path is None
    assert config.data.label_names == ["world", "sports", "business"]
    assert "`label_text` key" in comment_above(starter.text, "data.label_names")
    assert starter.label_counts[str(tmp_path / "data" / "test.csv")] == {"world": 3, "sports": 3, "business": 3}
    assert checked(out) == 0


def test_alpaca_is_generation(tmp_path, write_jsonl, checked):
    rows = [{"instruction": f"Write about {sentence(i).lower()}", "input": "", "output": sentence(i + 500)}
            for i in range(20)]
    starter = write_starter_config(write_jsonl(tmp_path / "alpaca.jsonl", rows), out_path=tmp_path / "a.yml")
    config = load_config(tmp_path / "a.yml")
    assert config.data.format == "alpaca" and config.data.columns == {} and config.data.label_names is None
    assert config.evaluate.task == "generation" and config.evaluate.metrics == ["bleu", "rouge_l", "exact_match"]
    assert starter.label_counts is None and "columns:" not in starter.text
    assert checked(tmp_path / "a.yml") == 0


def test_messages_with_a_test_file(tmp_path, write_jsonl, checked):
    def conversation(i):
        return {"messages": [{"role": "user", "content": sentence(i)},
                             {"role": "assistant", "content": sentence(i + 1000)}]}

    train = write_jsonl(tmp_path / "chat.jsonl", [conversation(i) for i in range(20)])
    test = write_jsonl(tmp_path / "chat_test.jsonl", [conversation(i) for i in range(200, 204)])
    starter = write_starter_config(train, test, tmp_path / "chat.yaml")
    config = load_config(tmp_path / "chat.yaml")
    assert config.data.format == "messages" and config.data.test == test
    assert starter.rows == {train: 20, test: 4}
    assert checked(tmp_path / "chat.yaml") == 0


def test_real_sms_spam_rows(shared_data, tmp_path, checked):
    lines = (shared_data / "sms_spam_train.jsonl").read_text(encoding="utf-8").splitlines()[:200]
    data = tmp_path / "sms.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    starter = write_starter_config(data, out_path=tmp_path / "sms.yaml")

    config = load_config(tmp_path / "sms.yaml")
    assert config.data.format == "classification" and config.data.label_names == ["ham", "spam"]
    assert sum(starter.label_counts[str(data)].values()) == 200
    assert config.data.max_length == -(-starter.length_percentile // LENGTH_MULTIPLE) * LENGTH_MULTIPLE
    assert checked(tmp_path / "sms.yaml") in (0, 1)  # readable; the real rows have findings (duplicates)
    printed = starter.render()
    assert "format: classification" in printed and "labels in" in printed and "ham " in printed
    assert printed.endswith(f"next: tunesmith data check {tmp_path / 'sms.yaml'}   then: tunesmith run "
                            f"{tmp_path / 'sms.yaml'}")


def test_an_existing_config_is_kept_unless_asked(tmp_path, write_jsonl, error_of, default_model_dir):
    data = write_jsonl(tmp_path / "d.jsonl", sms_rows(20))
    out = tmp_path / "config.yaml"
    out.write_text("mine\n", encoding="utf-8")
    message = error_of(lambda: write_starter_config(data, out_path=out))
    assert "already exists" in message and "--overwrite" in message and out.read_text() == "mine\n"
    assert "does not end in .yaml" in error_of(lambda: write_starter_config(data, out_path=tmp_path / "c.txt"))
    write_starter_config(data, out_path=out, overwrite=True)
    assert load_config(out).data.columns == {"text": "sms", "label": "category"}


def test_a_bad_row_is_one_line_naming_file_and_line(tmp_path, capsys):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps(sms_rows(1)[0]) + '\n{"sms": "cut short", "category"\n', encoding="utf-8")
    assert main(["init", str(data), "--out", str(tmp_path / "config.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"tunesmith: error: {data}:2: malformed JSON") and "\n" not in err
    assert not (tmp_path / "config.yaml").exists()


def test_undetectable_keys_say_what_to_set(tmp_path, write_jsonl, error_of):
    data = write_jsonl(tmp_path / "pairs.jsonl", [{"en": "A dog runs.", "de": "Ein Hund rennt."}])
    message = error_of(lambda: write_starter_config(data, out_path=tmp_path / "c.yaml"))
    assert message.startswith(f"{data}:1: cannot detect the data format from the keys: en, de")
    assert "data.columns" in message


@pytest.mark.parametrize(("keys", "expected"), [
    ({"text": "a", "label": "b"}, {}),
    ({"instruction": "a", "output": "b"}, {}),
    ({"sms": "a", "category": "b"}, {"text": "sms", "label": "category"}),
    ({"Message": "a", "Category": "b"}, {"text": "Message", "label": "Category"}),
    ({"text": "a", "sentiment": 1}, {"label": "sentiment"}),
    ({"review": "a", "score": 3.5}, {"text": "review"}),  # a regression target needs no mapping
    ({"question": "a", "answer": "b"}, {"prompt": "question", "completion": "answer"}),
    ({"question": "a", "intent": "b"}, {"text": "question", "label": "intent"}),
    ({"en": "a", "de": "b"}, {}),
])
def test_columns_are_guessed_from_common_names(keys, expected):
    assert guess_columns(Row("f.jsonl", 1, keys)) == expected


def test_integer_label_names():
    rows = [Row("f", i + 1, {"label": i % 2, "label_text": ("no", "yes")[i % 2]}) for i in range(4)]
    assert integer_label_names(rows, ["0", "1"], "label") == (["no", "yes"], "label_text")
    clash = [*rows, Row("f", 5, {"label": 0, "label_text": "yes"})]  # two names for label 0: not a naming key
    assert integer_label_names(clash, ["0", "1"], "label") == (["0", "1"], None)
    assert integer_label_names(rows, ["1", "2"], "label") == (None, None)  # not 0..n-1: label_names cannot index them
    assert integer_label_names(rows, ["ham", "spam"], "label") == (None, None)


def test_max_length_is_the_99th_percentile_rounded_up():
    assert choose_max_length(list(range(1, 101))) == (100, 128)
    assert choose_max_length([10] * 50) == (10, LENGTH_MULTIPLE)
    assert choose_max_length([5000] * 10) == (5000, MAX_LENGTH_CAP)


def test_the_written_config_runs_as_written(tmp_path, write_jsonl, tiny_model_dir, capsys, default_model_dir,
                                           monkeypatch):
    data = write_jsonl(tmp_path / "messages.jsonl", sms_rows(30))
    assert main(["init", data, "--out", str(tmp_path / "config.yaml")]) == 0
    assert f"next: tunesmith data check {tmp_path / 'config.yaml'}" in capsys.readouterr().out
    # The run's tokenized data and base evaluation are cached here, not in the shared cache (init needed that one:
    # the default model's tokenizer lives there).
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    # max_length was sized with the default model's tokenizer; the tiny model's small vocabulary needs more tokens
    # for the same rows, so the swap of models swaps that one value too.
    assert main(["run", str(tmp_path / "config.yaml"), "--set", f"model.name={tiny_model_dir}",
                 "--set", "data.max_length=256", "--set", "train.max_steps=2",
                 "--set", f"output.dir={tmp_path / 'runs'}"]) == 0
    assert "report: " in capsys.readouterr().out
