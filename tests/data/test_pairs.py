"""`tunesmith.data.pairs`: a preference row as two sequences after one prompt, loss on each answer only; the cache
behind `tokenized_pair_split` (a hit equals tokenizing, any change of the rows or settings misses)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tunesmith.config.schema import DataConfig
from tunesmith.data import pairs as pairs_module
from tunesmith.data.example import Example
from tunesmith.data.pairs import pair_conversations, tokenize_pairs, tokenized_pair_split
from tunesmith.data.splits import load_splits
from tunesmith.data.tokenize import IGNORE_INDEX, TruncationStats

ROW = Example(messages=({"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}),
              location="pairs.jsonl:3", rejected={"role": "assistant", "content": "I cannot answer that question."})


def test_both_sequences_share_the_prompt_and_supervise_their_answer_only(tiny_tokenizer):
    (pair,), stats = tokenize_pairs([ROW], tiny_tokenizer, max_length=512)
    cut = pair.prompt_length
    assert pair.chosen.input_ids[:cut] == pair.rejected.input_ids[:cut] and cut > 0
    for row, answer in ((pair.chosen, "Blue."), (pair.rejected, "I cannot answer that question.")):
        assert all(label == IGNORE_INDEX for label in row.labels[:cut])
        assert row.labels[cut:] == row.input_ids[cut:]  # every token after the prompt, up to the end of turn
        assert row.input_ids[-1] == tiny_tokenizer.eos_token_id
        assert answer in tiny_tokenizer.decode(row.input_ids[cut:])
    ids = pair.trl_ids()
    assert ids["prompt_ids"] + ids["chosen_ids"] == pair.chosen.input_ids
    assert pair.location == "pairs.jsonl:3" and stats.rows == 2 and pair.supervised


def test_truncation_is_counted_on_both_sides(tiny_tokenizer):
    (full,), _ = tokenize_pairs([ROW], tiny_tokenizer, max_length=512)
    (cut,), stats = tokenize_pairs([ROW], tiny_tokenizer, max_length=full.prompt_length + 2)
    assert stats.truncated_rows == 2 and len(cut.rejected.input_ids) == full.prompt_length + 2


def test_a_row_without_a_rejected_answer_is_not_a_pair():
    with pytest.raises(ValueError, match="pairs.jsonl:3"):
        pair_conversations(Example(messages=ROW.messages, location=ROW.location))


# ---- the cache behind tokenized_pair_split ---------------------------------------------------------------------


@pytest.fixture()
def pair_file(tmp_path, monkeypatch, write_jsonl):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    rows = [{"prompt": f"Name colour {i}.", "chosen": "Blue " * (i % 3 + 1), "rejected": f"No idea {i}."}
            for i in range(8)]
    return write_jsonl(tmp_path / "pairs.jsonl", rows)


@pytest.fixture()
def tokenizing(monkeypatch):
    """Counts the pair tokenizations the cache runs on a miss."""
    calls = []
    real = pairs_module.tokenize_pairs
    monkeypatch.setattr(pairs_module, "tokenize_pairs", lambda *args: calls.append(1) or real(*args))
    return calls


def test_a_second_call_loads_the_same_pairs_from_the_cache(pair_file, tiny_tokenizer, tokenizing):
    config = DataConfig(train=pair_file, split={"validation": 0, "test": 0})
    examples = load_splits(config).train
    first, first_stats = tokenized_pair_split(config, "train", examples, tiny_tokenizer)
    again, again_stats = tokenized_pair_split(config, "train", examples, tiny_tokenizer)
    assert len(tokenizing) == 1 and again == first and again_stats == first_stats and len(first) == 8
    assert (first, first_stats) == tokenize_pairs(examples, tiny_tokenizer, config.max_length)
    assert again[3].location == f"{pair_file}:4"


def test_another_rejected_answer_or_setting_misses_the_cache(pair_file, tiny_tokenizer, tokenizing):
    config = DataConfig(train=pair_file, split={"validation": 0, "test": 0})
    examples = load_splits(config).train
    tokenized_pair_split(config, "train", examples, tiny_tokenizer)
    other = [replace(examples[0], rejected={"role": "assistant", "content": "Red."}), *examples[1:]]
    (changed, *_), _ = tokenized_pair_split(config, "train", other, tiny_tokenizer)
    assert len(tokenizing) == 2 and "Red." in tiny_tokenizer.decode(changed.rejected.input_ids)
    tokenized_pair_split(config.model_copy(update={"max_length": 64}), "train", examples, tiny_tokenizer)
    tokenized_pair_split(config, "validation", examples, tiny_tokenizer)
    assert len(tokenizing) == 4


def test_cache_off_stores_nothing(pair_file, tiny_tokenizer, tokenizing, tmp_path):
    config = DataConfig(train=pair_file, split={"validation": 0, "test": 0}, cache=False)
    examples = load_splits(config).train
    tokenized_pair_split(config, "train", examples, tiny_tokenizer)
    tokenized_pair_split(config, "train", examples, tiny_tokenizer)
    assert len(tokenizing) == 2 and not (tmp_path / "cache").exists()
    assert tokenized_pair_split(config, "test", [], tiny_tokenizer) == ([], TruncationStats())
