"""Fixtures of the training tests."""

from __future__ import annotations

import shutil

import pytest

from tunesmith.data.example import Example, Splits
from tunesmith.data.run_inputs import RunInputs
from tunesmith.run_dir import RunDir
from tunesmith.train import train

_PROMPTS = ["Write a short poem about the sea.", "What is the capital of France?", "Translate to German: A man.",
            "Hey, are we still meeting for lunch tomorrow?", "Classify the message as ham or spam."]
_CHOSEN = ["The waves roll in, the tide goes out.", "Paris.", "Ein Mann.", "Yes, I'll bring the notes.", "ham"]
_REJECTED = ["WINNER!! call now", "The quick brown fox jumps over the lazy dog.", "0 1 2 3", "no", "spam spam spam"]


def _preference_examples(n: int, offset: int = 0) -> list[Example]:
    """``n`` preference rows (prompt, chosen, rejected) of the tiny tokenizer's words, answers of varied lengths."""
    rows = []
    for i in range(offset, offset + n):
        k = i % len(_PROMPTS)
        prompt = _PROMPTS[k] + " " * (i % 3)  # prompts of a few lengths, so pairs pad differently
        chosen, rejected = _CHOSEN[k], _REJECTED[(k + i) % len(_REJECTED)]
        rows.append(Example(messages=({"role": "user", "content": prompt}, {"role": "assistant", "content": chosen}),
                            location=f"pairs.jsonl:{i + 1}", rejected={"role": "assistant", "content": rejected}))
    return rows


@pytest.fixture(scope="session")
def preference_examples():
    """``preference_examples(n, offset=0)``: preference rows (prompt, chosen, rejected) of the tiny tokenizer's
    words, `Example.rejected` set, answers of varied lengths."""
    return _preference_examples


@pytest.fixture()
def tiny_splits(spam_examples):
    """``tiny_splits(n_train=16, n_val=4)``: in-memory splits of tiny spam/ham conversations."""

    def make(n_train: int = 16, n_val: int = 4) -> Splits:
        return Splits(train=spam_examples(n_train), validation=spam_examples(n_val, 100),
                      test=spam_examples(4, 200), format="classification", labels=["ham", "spam"])

    return make


@pytest.fixture()
def preference_splits():
    """``preference_splits(n_train=12, n_val=4)``: in-memory splits of preference rows (`Example.rejected` set),
    as the data stage delivers `data.format: preference` rows."""

    def make(n_train: int = 12, n_val: int = 4) -> Splits:
        return Splits(train=_preference_examples(n_train), validation=_preference_examples(n_val, 100),
                      test=_preference_examples(4, 200), format="preference")

    return make


@pytest.fixture()
def killed_and_resumed(tmp_path):
    """``killed_and_resumed(config, make_splits)``: the run of ``config`` trained to its ``max_steps`` on
    ``make_splits()``, and a copy of it without its last checkpoint and best weights (as if killed after the
    checkpoint before), resumed: ``(full run, resumed run, the resume's summary)``."""

    def run(config, make_splits):
        full = RunDir(tmp_path / "full")
        train(config, full, RunInputs(config, make_splits()))
        resumed = RunDir(tmp_path / "resumed")
        shutil.copytree(full.root, resumed.root)
        shutil.rmtree(resumed.checkpoints / f"step-{config.train.max_steps:06d}")
        shutil.rmtree(resumed.best)
        return full, resumed, train(config, resumed, RunInputs(config, make_splits()), resume=True)

    return run
