"""A model on test examples: evaluate_model per task and mode, metric selection, the test loss, and metrics of any
subset."""

from __future__ import annotations

import pytest

from tunesmith.config import EvaluateConfig
from tunesmith.data.example import Example
from tunesmith.data.task import Task
from tunesmith.errors import DataError
from tunesmith.evaluate.likelihood import loss_and_perplexity
from tunesmith.evaluate.tasks import evaluate_model
from tunesmith.predict import answers
from tunesmith.predict.answers import task_metrics

LABELS = ["ham", "spam"]
CLASSIFICATION = Task.of("classification", LABELS)


def labelled(text: str, label: str, line: int) -> Example:
    messages = (
        {"role": "user", "content": f"Classify the message as ham or spam.\n\n{text}"},
        {"role": "assistant", "content": label},
    )
    return Example(messages=messages, location=f"test.jsonl:{line}", label=label)


def answered(question: str, answer: str, line: int, **fields) -> Example:
    messages = ({"role": "user", "content": question}, {"role": "assistant", "content": answer})
    return Example(messages=messages, location=f"test.jsonl:{line}", **fields)


EXAMPLES = [
    labelled("WINNER!! You have won a free prize", "spam", 1),
    labelled("Hey, are we still meeting for lunch tomorrow?", "ham", 2),
    labelled("call now to claim your cash reward", "spam", 3),
]


@pytest.fixture()
def fixed_replies(monkeypatch):
    """Make `generate` return given replies, so generate-mode scoring can be checked exactly."""

    def install(replies: list[str]):
        monkeypatch.setattr(answers, "generate", lambda model, tokenizer, prompts, *args, **kwargs: list(replies))

    return install


def test_likelihood_classification_end_to_end(chatty_model, tiny_tokenizer):
    metrics, records = evaluate_model(
        chatty_model, tiny_tokenizer, EXAMPLES, CLASSIFICATION, EvaluateConfig(batch_size=2), 256
    )
    assert set(metrics) == {
        "accuracy", "precision", "recall", "f1", "per_class", "confusion_matrix", "loss", "perplexity",
    }
    assert [record["location"] for record in records] == ["test.jsonl:1", "test.jsonl:2", "test.jsonl:3"]
    assert records[1]["prompt"] == EXAMPLES[1].messages[0]["content"]
    assert records[1]["prompt"].endswith("Hey, are we still meeting for lunch tomorrow?")
    assert [record["reference"] for record in records] == ["spam", "ham", "spam"]
    for record in records:
        assert set(record["scores"]) == set(LABELS)
        assert record["prediction"] == max(record["scores"], key=record["scores"].get)
        assert record["correct"] == (record["prediction"] == record["reference"])
    assert metrics["accuracy"] == pytest.approx(sum(record["correct"] for record in records) / 3)
    direct = loss_and_perplexity(chatty_model, tiny_tokenizer, EXAMPLES, 256, batch_size=2)
    assert metrics["loss"] == pytest.approx(direct["loss"], abs=1e-4)  # read off the label scores
    assert metrics["perplexity"] == pytest.approx(direct["perplexity"], rel=1e-4)


def test_generate_mode_matches_labels_case_insensitively(chatty_model, tiny_tokenizer, fixed_replies):
    fixed_replies([" Spam\n", "ham.", "HAM"])
    config = EvaluateConfig(classification_mode="generate")
    metrics, records = evaluate_model(chatty_model, tiny_tokenizer, EXAMPLES, CLASSIFICATION, config, 256)
    assert [record["prediction"] for record in records] == ["spam", "ham.", "ham"]
    assert [record["correct"] for record in records] == [True, False, False]
    assert all("scores" not in record for record in records)
    assert metrics["accuracy"] == pytest.approx(1 / 3)
    # true ham -> "ham." (other); true spam -> spam, ham
    assert metrics["confusion_matrix"] == {
        "labels": ["ham", "spam", "<other>"], "matrix": [[0, 0, 1], [1, 1, 0], [0, 0, 0]],
    }


def test_generate_mode_on_the_real_tiny_model_runs(chatty_model, tiny_tokenizer):
    config = EvaluateConfig(classification_mode="generate", max_new_tokens=4, batch_size=2)
    metrics, records = evaluate_model(chatty_model, tiny_tokenizer, EXAMPLES, CLASSIFICATION, config, 256)
    assert {"accuracy", "f1", "confusion_matrix", "loss", "perplexity"} <= set(metrics)
    assert len(records) == 3 and all(isinstance(record["prediction"], str) for record in records)


def test_selected_metrics_keep_details_and_loss(chatty_model, tiny_tokenizer):
    """(A metric of another task fails when the task is resolved: `tests/data/test_task.py`.)"""
    selected = Task.of("classification", LABELS, ["accuracy"])
    metrics, _ = evaluate_model(chatty_model, tiny_tokenizer, EXAMPLES, selected, EvaluateConfig(), 256)
    assert set(metrics) == {"accuracy", "per_class", "confusion_matrix", "loss", "perplexity"}


def test_regression_parses_numbers_from_replies(chatty_model, tiny_tokenizer, fixed_replies):
    fixed_replies(["3.5", "about 2 I think", "no idea"])
    examples = [answered("How similar?", "3.0", 1, target=3.0), answered("And?", "2.0", 2, target=2.0),
                answered("Now?", "4.0", 3, target=4.0)]
    metrics, records = evaluate_model(chatty_model, tiny_tokenizer, examples, Task.of("regression"), EvaluateConfig(),
                                      256)
    # parsed pairs (3, 3.5), (2, 2): errors 0.5 and 0
    assert metrics["mse"] == pytest.approx(0.125)
    assert metrics["mae"] == pytest.approx(0.25)
    assert metrics["pearson"] == pytest.approx(1.0)
    assert metrics["parse_failures"] == 1
    assert [record["prediction"] for record in records] == ["3.5", "about 2 I think", "no idea"]
    assert all(record["correct"] is None for record in records)


def test_regression_on_rows_without_a_number_is_a_data_error(chatty_model, tiny_tokenizer, fixed_replies):
    fixed_replies(["3"])
    with pytest.raises(DataError, match="test.jsonl:1: regression needs a numeric answer, got 'soon'"):
        evaluate_model(
            chatty_model, tiny_tokenizer, [answered("When?", "soon", 1)], Task.of("regression"), EvaluateConfig(), 256
        )


def test_generation_uses_every_reference(chatty_model, tiny_tokenizer, fixed_replies):
    fixed_replies(["Paris", "a dog runs"])
    examples = [
        answered("Capital of France?", "paris", 1),
        answered("Summarize.", "the cat sat", 2, meta={"references": ["the cat sat", "a dog runs"]}),
    ]
    metrics, records = evaluate_model(chatty_model, tiny_tokenizer, examples, Task.of("generation"), EvaluateConfig(),
                                      256)
    assert set(metrics) == {"bleu", "rouge_l", "exact_match", "loss", "perplexity"}
    assert metrics["exact_match"] == 1.0 and metrics["rouge_l"] == pytest.approx(1.0)
    assert [record["correct"] for record in records] == [True, True]
    assert records[1]["reference"] == "the cat sat"


def test_task_metrics_score_any_subset_of_the_predictions(chatty_model, tiny_tokenizer):
    metrics, records = evaluate_model(chatty_model, tiny_tokenizer, EXAMPLES, CLASSIFICATION, EvaluateConfig(), 128)
    predictions = [record["prediction"] for record in records]
    assert task_metrics(CLASSIFICATION, EXAMPLES, predictions)["accuracy"] == metrics["accuracy"]
    subset = task_metrics(CLASSIFICATION, EXAMPLES[1:], predictions[1:])
    assert subset["accuracy"] == sum(record["correct"] for record in records[1:]) / 2
