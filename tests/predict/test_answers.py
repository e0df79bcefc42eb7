"""A model's answers per task and mode, and label matching."""

from __future__ import annotations

import pytest

from tunesmith.config import EvaluateConfig
from tunesmith.data.example import Example
from tunesmith.data.task import Task
from tunesmith.predict.answers import answer, match_label
from tunesmith.predict.labels import predict_labels, score_labels

LABELS = ["ham", "spam"]
CLASSIFICATION = Task.of("classification", LABELS)
EXAMPLES = [
    Example(messages=({"role": "user", "content": text}, {"role": "assistant", "content": label}),
            location=f"t.jsonl:{i}", label=label)
    for i, (text, label) in enumerate([("WINNER!! free prize", "spam"), ("lunch tomorrow?", "ham")], 1)
]


def test_likelihood_answers_are_the_best_scoring_labels(chatty_model, tiny_tokenizer):
    answers = answer(chatty_model, tiny_tokenizer, EXAMPLES, CLASSIFICATION, EvaluateConfig(batch_size=1))
    scores = score_labels(chatty_model, tiny_tokenizer, [e.prompt_messages for e in EXAMPLES], LABELS, 2)
    for row, expected in zip(answers.label_scores, scores, strict=True):
        assert row == pytest.approx(expected, abs=1e-5)
    assert answers.predictions == predict_labels(scores, LABELS)


def test_generated_answers_carry_no_label_scores(chatty_model, tiny_tokenizer):
    config = EvaluateConfig(classification_mode="generate", max_new_tokens=3)
    answers = answer(chatty_model, tiny_tokenizer, EXAMPLES, CLASSIFICATION, config)
    assert answers.label_scores is None and len(answers.predictions) == 2


def test_match_label():
    assert match_label("  SPAM \n", LABELS) == "spam"
    assert match_label("spammy", LABELS) == "spammy"
