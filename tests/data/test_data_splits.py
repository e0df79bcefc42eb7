"""load_splits: seeded, disjoint, correctly sized splits; carving missing splits; caps; label sets; real data."""

from __future__ import annotations

import json

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data.splits import load_splits
from tunesmith.errors import ConfigError


def write_rows(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def numbered(count, start=0):
    return [{"prompt": f"question {i}", "completion": f"answer {i}"} for i in range(start, start + count)]


def lines(examples):
    return [int(example.source.rsplit(":", 1)[1]) for example in examples]


def test_path_is_split_deterministically_disjoint_and_sized_by_the_fractions(tmp_path):
    path = write_rows(tmp_path / "all.jsonl", numbered(20))
    cfg = DataConfig(path=path, split={"validation": 0.1, "test": 0.2, "seed": 3})
    splits = load_splits(cfg)
    train, validation, test = lines(splits.train), lines(splits.validation), lines(splits.test)
    assert (len(train), len(validation), len(test)) == (14, 2, 4)
    assert sorted(train + validation + test) == list(range(1, 21))
    assert all(part == sorted(part) for part in (train, validation, test))  # each split keeps file order
    again = load_splits(cfg)
    assert (lines(again.train), lines(again.validation), lines(again.test)) == (train, validation, test)
    other = load_splits(DataConfig(path=path, split={"validation": 0.1, "test": 0.2, "seed": 4}))
    assert lines(other.test) != test
    assert splits.format == "prompt_completion" and splits.labels is None
    assert splits.files == {"train": path, "validation": path, "test": path}
    assert splits.test[0].messages[0]["content"] == f"question {test[0] - 1}"


def test_fractions_round_half_up(tmp_path):
    path = write_rows(tmp_path / "all.jsonl", numbered(10))
    splits = load_splits(DataConfig(path=path, split={"validation": 0.25, "test": 0.15}))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (5, 3, 2)


def test_train_only_carves_validation_and_test(tmp_path):
    path = write_rows(tmp_path / "train.jsonl", numbered(10))
    splits = load_splits(DataConfig(train=path))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (8, 1, 1)
    assert splits.files == {"train": path, "validation": path, "test": path}


def test_train_and_test_files_carve_only_validation(tmp_path):
    train = write_rows(tmp_path / "train.jsonl", numbered(10))
    test = write_rows(tmp_path / "test.jsonl", numbered(3, start=100))
    splits = load_splits(DataConfig(train=train, test=test, split={"validation": 0.2}))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (8, 2, 3)
    assert lines(splits.test) == [1, 2, 3] and splits.test[0].source == f"{test}:1"
    assert sorted(lines(splits.train) + lines(splits.validation)) == list(range(1, 11))
    assert splits.files == {"train": train, "validation": train, "test": test}


def test_all_three_files_are_used_as_they_are(tmp_path):
    files = {name: write_rows(tmp_path / f"{name}.jsonl", numbered(n)) for name, n in
             [("train", 4), ("validation", 2), ("test", 3)]}
    splits = load_splits(DataConfig(**files))
    assert (lines(splits.train), lines(splits.validation), lines(splits.test)) == ([1, 2, 3, 4], [1, 2], [1, 2, 3])


def test_zero_fraction_gives_an_empty_split_but_a_too_small_one_is_an_error(tmp_path):
    path = write_rows(tmp_path / "all.jsonl", numbered(4))
    splits = load_splits(DataConfig(path=path, split={"validation": 0.0, "test": 0.25}))
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (3, 0, 1)
    with pytest.raises(ConfigError) as caught:
        load_splits(DataConfig(path=path, split={"validation": 0.1, "test": 0.25}))
    assert str(caught.value) == (
        "config: data.split.validation: 0.1 of the 4 rows of data.path is less than one row (raise it, add rows, "
        "give a validation file, or set it to 0 to have no validation rows)"
    )
    with pytest.raises(ConfigError, match="leaves none of the 4 rows of data.path to train on"):
        load_splits(DataConfig(path=path, split={"validation": 0.5, "test": 0.5}))


def test_row_caps(tmp_path):
    train = write_rows(tmp_path / "train.jsonl", numbered(10))
    validation = write_rows(tmp_path / "validation.jsonl", numbered(5))
    test = write_rows(tmp_path / "test.jsonl", numbered(5))
    cfg = DataConfig(train=train, validation=validation, test=test, max_train_rows=4, max_eval_rows=2)
    splits = load_splits(cfg)
    sampled = lines(splits.train)
    assert len(sampled) == 4 and sampled == sorted(sampled) and len(set(sampled)) == 4
    assert lines(load_splits(cfg).train) == sampled
    assert (lines(splits.validation), lines(splits.test)) == ([1, 2], [1, 2])


def test_label_set_covers_every_split_and_label_names_fix_the_order(tmp_path):
    train = write_rows(tmp_path / "train.jsonl", [{"text": "a", "label": "pos"}, {"text": "b", "label": "neg"}])
    test = write_rows(tmp_path / "test.jsonl", [{"text": "c", "label": "neutral"}])
    validation = write_rows(tmp_path / "validation.jsonl", [{"text": "d", "label": "pos"}])
    splits = load_splits(DataConfig(train=train, validation=validation, test=test))
    assert splits.format == "classification" and splits.labels == ["neg", "neutral", "pos"]
    named = load_splits(DataConfig(train=train, validation=validation, test=test,
                                   label_names=["pos", "neutral", "neg"]))
    assert named.labels == ["pos", "neutral", "neg"]
    assert named.train[0].messages[0]["content"] == (
        "Classify the following text. Answer with one of: pos, neutral, neg.\n\na"
    )


def test_real_sms_spam_int_labels_and_mapped_label_text(shared_data):
    path = str(shared_data / "sms_spam_train.jsonl")
    splits = load_splits(DataConfig(path=path))
    assert (splits.format, splits.labels) == ("classification", ["0", "1"])
    assert (len(splits.train), len(splits.validation), len(splits.test)) == (3660, 457, 457)
    every = splits.train + splits.validation + splits.test
    assert sum(example.label == "1" for example in every) == 603  # the README's spam count
    named = load_splits(DataConfig(path=path, columns={"label": "label_text"}))
    assert named.labels == ["ham", "spam"]
    assert sum(example.label == "spam" for example in named.train + named.validation + named.test) == 603
    first = min(named.train + named.validation + named.test, key=lambda e: int(e.source.rsplit(":", 1)[1]))
    assert first.messages == (
        {"role": "user", "content": "Classify the following text. Answer with one of: ham, spam.\n\nGo until jurong "
         "point, crazy.. Available only in bugis n great world la e buffet... Cine there got amore wat..."},
        {"role": "assistant", "content": "ham"},
    )
