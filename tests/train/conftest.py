"""Fixtures of the training tests."""

from __future__ import annotations

import pytest

from tunesmith.data.example import Splits


@pytest.fixture()
def tiny_splits(spam_examples):
    """``tiny_splits(n_train=16, n_val=4)``: in-memory splits of tiny spam/ham conversations."""

    def make(n_train: int = 16, n_val: int = 4) -> Splits:
        return Splits(train=spam_examples(n_train), validation=spam_examples(n_val, 100),
                      test=spam_examples(4, 200), format="classification", labels=["ham", "spam"])

    return make
