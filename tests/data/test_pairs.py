"""`tunesmith.data.pairs`: a preference row as two sequences after one prompt, loss on each answer only."""

from __future__ import annotations

import pytest

from tunesmith.data.example import Example
from tunesmith.data.pairs import pair_conversations, tokenize_pairs
from tunesmith.data.tokenize import IGNORE_INDEX

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
