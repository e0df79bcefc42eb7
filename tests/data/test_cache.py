"""The tokenized cache: a second run loads instead of tokenizing; any change of its inputs invalidates it."""

import copy
from pathlib import Path

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data import cache as cache_module
from tunesmith.data.cache import TokenizedRows, keep_supervised, row_lengths, tokenized_split
from tunesmith.data.splits import load_splits
from tunesmith.data.tokenize import tokenize_examples


@pytest.fixture()
def data_file(tmp_path, monkeypatch, write_jsonl):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    rows = [{"prompt": f"Say something about item {i}", "completion": "win a free prize now " * (i % 7 + 1)}
            for i in range(40)]
    return Path(write_jsonl(tmp_path / "train.jsonl", rows))


@pytest.fixture()
def counted(monkeypatch):
    """Counts calls of the tokenizer stage the cache runs on a miss."""
    calls = []
    real = cache_module.tokenize_to_dataset

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(cache_module, "tokenize_to_dataset", counting)
    return calls


def prepare(path, tokenizer, **settings):
    config = DataConfig(train=str(path), split={"validation": 0, "test": 0}, **settings)
    return tokenized_split(config, "train", load_splits(config).train, tokenizer)


def test_second_run_loads_from_cache_with_the_same_rows_and_stats(data_file, tiny_tokenizer, counted, caplog):
    caplog.set_level("INFO", logger="tunesmith")
    first, first_stats = prepare(data_file, tiny_tokenizer, max_length=24)
    second, second_stats = prepare(data_file, tiny_tokenizer, max_length=24)
    assert counted == [1]
    assert isinstance(second, TokenizedRows)
    assert "loaded 40 tokenized train rows from cache" in caplog.text
    assert "tokenized 40 train rows in" in caplog.text
    expected, expected_stats = tokenize_examples(load_splits(DataConfig(
        train=str(data_file), split={"validation": 0, "test": 0})).train, tiny_tokenizer, 24)
    assert [(r.input_ids, r.labels, r.location, r.truncated, r.supervised_lost) for r in second] == \
        [(r.input_ids, r.labels, r.location, r.truncated, r.supervised_lost) for r in expected]
    # truncation counts survive the cache (they cannot be recomputed from the truncated rows)
    assert second_stats == first_stats == expected_stats
    assert expected_stats.truncated_rows > 0 and expected_stats.supervised_tokens_lost > 0
    assert list(row_lengths(second)) == [len(r.input_ids) for r in expected]
    assert len(keep_supervised(second)) == sum(r.num_supervised > 0 for r in expected)


def test_changed_file_bytes_invalidate(data_file, tiny_tokenizer, counted):
    prepare(data_file, tiny_tokenizer)
    data_file.write_text(data_file.read_text(encoding="utf-8").replace("item 3", "item 33"), encoding="utf-8")
    rows, _ = prepare(data_file, tiny_tokenizer)
    assert counted == [1, 1]
    assert "33" in tiny_tokenizer.decode(rows[3].input_ids)


def test_changed_tokenizer_invalidates(data_file, tiny_tokenizer, counted):
    prepare(data_file, tiny_tokenizer)
    other = copy.deepcopy(tiny_tokenizer)
    other.add_tokens(["prize now"])
    prepare(data_file, other)
    assert counted == [1, 1]


def test_changed_chat_template_invalidates(data_file, tiny_tokenizer, counted):
    prepare(data_file, tiny_tokenizer)
    other = copy.deepcopy(tiny_tokenizer)
    other.chat_template = other.chat_template.replace("You are a helpful assistant.", "Be brief.")
    prepare(data_file, other)
    assert counted == [1, 1]


def test_changed_max_length_invalidates(data_file, tiny_tokenizer, counted):
    prepare(data_file, tiny_tokenizer, max_length=24)
    rows, _ = prepare(data_file, tiny_tokenizer, max_length=16)
    assert counted == [1, 1]
    assert max(row_lengths(rows)) == 16


def test_cache_false_bypasses(data_file, tiny_tokenizer, counted, tmp_path):
    first, _ = prepare(data_file, tiny_tokenizer, cache=False)
    prepare(data_file, tiny_tokenizer, cache=False)
    assert isinstance(first, list)
    assert not (tmp_path / "cache" / "tokenized").exists()


def test_half_written_entry_is_not_trusted(data_file, tiny_tokenizer, counted):
    config = DataConfig(train=str(data_file), split={"validation": 0, "test": 0})
    folder = cache_module.tokenized_cache_root() / cache_module.cache_key(config, "train", tiny_tokenizer,
                                                                          load_splits(config).train)
    (folder / "dataset").mkdir(parents=True)  # a run killed before stats.json was written
    prepare(data_file, tiny_tokenizer)
    assert counted == [1]
    assert (folder / "stats.json").is_file()


def test_rows_handed_in_directly_do_not_hit_an_entry_of_other_rows(data_file, tiny_tokenizer, counted):
    config = DataConfig(train=str(data_file), split={"validation": 0, "test": 0})
    examples = load_splits(config).train
    tokenized_split(config, "train", examples, tiny_tokenizer)
    rows, _ = tokenized_split(config, "train", examples[:5], tiny_tokenizer)
    assert counted == [1, 1] and len(rows) == 5


def test_batch_order_is_the_same_from_cached_lengths():
    """Cached rows give lengths as a numpy array; the epoch plans (and so exact resume) must not change."""
    import random

    import numpy as np

    from tunesmith.train.batching import epoch_batches
    from tunesmith.train.packing import epoch_packed_batches

    lengths = [random.Random(i).randint(1, 100) for i in range(500)]
    array = np.asarray(lengths)
    assert epoch_batches(lengths, 4, 1, 0, True) == epoch_batches(array, 4, 1, 0, True)
    assert epoch_packed_batches(lengths, 128, 4, 1, 0) == epoch_packed_batches(array, 128, 4, 1, 0)
