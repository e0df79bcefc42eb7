"""evaluate_model per task and mode, metric selection, and evaluate_run / compare_run on a fake run folder."""

from __future__ import annotations

import json

import pytest

from tunesmith.config import DataConfig, EvaluateConfig, ModelConfig, RunConfig, save_config
from tunesmith.data.example import Example
from tunesmith.errors import ConfigError, DataError, RunError
from tunesmith.evaluate import runner
from tunesmith.evaluate.likelihood import loss_and_perplexity
from tunesmith.evaluate.runner import (
    compare_run,
    evaluate_model,
    evaluate_run,
    format_comparison,
    match_label,
    resolve_task,
)
from tunesmith.run_dir import RunDir

LABELS = ["ham", "spam"]


def labelled(text: str, label: str, line: int) -> Example:
    messages = (
        {"role": "user", "content": f"Classify the message as ham or spam.\n\n{text}"},
        {"role": "assistant", "content": label},
    )
    return Example(messages=messages, source=f"test.jsonl:{line}", label=label)


def answered(question: str, answer: str, line: int, **fields) -> Example:
    messages = ({"role": "user", "content": question}, {"role": "assistant", "content": answer})
    return Example(messages=messages, source=f"test.jsonl:{line}", **fields)


EXAMPLES = [
    labelled("WINNER!! You have won a free prize", "spam", 1),
    labelled("Hey, are we still meeting for lunch tomorrow?", "ham", 2),
    labelled("call now to claim your cash reward", "spam", 3),
]


@pytest.fixture()
def fixed_replies(monkeypatch):
    """Make `generate` return given replies, so generate-mode scoring can be checked exactly."""

    def install(replies: list[str]):
        monkeypatch.setattr(runner, "generate", lambda model, tokenizer, prompts, *args, **kwargs: list(replies))

    return install


@pytest.mark.parametrize(
    ("task", "fmt", "expected"),
    [
        ("auto", "classification", "classification"), ("auto", "regression", "regression"),
        ("auto", "alpaca", "generation"), ("auto", "messages", "generation"), ("auto", "text", "generation"),
        ("generation", "classification", "generation"), ("regression", "alpaca", "regression"),
    ],
)
def test_resolve_task(task, fmt, expected):
    assert resolve_task(EvaluateConfig(task=task), fmt) == expected


def test_likelihood_classification_end_to_end(chatty_model, tiny_tokenizer):
    metrics, records = evaluate_model(
        chatty_model, tiny_tokenizer, EXAMPLES, "classification", EvaluateConfig(batch_size=2), LABELS, 256
    )
    assert set(metrics) == {
        "accuracy", "precision", "recall", "f1", "per_class", "confusion_matrix", "loss", "perplexity",
    }
    assert [record["source"] for record in records] == ["test.jsonl:1", "test.jsonl:2", "test.jsonl:3"]
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
    metrics, records = evaluate_model(chatty_model, tiny_tokenizer, EXAMPLES, "classification", config, LABELS, 256)
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
    metrics, records = evaluate_model(chatty_model, tiny_tokenizer, EXAMPLES, "classification", config, LABELS, 256)
    assert {"accuracy", "f1", "confusion_matrix", "loss", "perplexity"} <= set(metrics)
    assert len(records) == 3 and all(isinstance(record["prediction"], str) for record in records)


def test_match_label():
    assert match_label("  SPAM \n", LABELS) == "spam"
    assert match_label("spammy", LABELS) == "spammy"


def test_selected_metrics_keep_details_and_loss(chatty_model, tiny_tokenizer):
    config = EvaluateConfig(metrics=["accuracy"])
    metrics, _ = evaluate_model(chatty_model, tiny_tokenizer, EXAMPLES, "classification", config, LABELS, 256)
    assert set(metrics) == {"accuracy", "per_class", "confusion_matrix", "loss", "perplexity"}
    with pytest.raises(ConfigError, match="evaluate.metrics: 'bleu' is not a classification metric"):
        evaluate_model(
            chatty_model, tiny_tokenizer, EXAMPLES, "classification", EvaluateConfig(metrics=["bleu"]), LABELS, 256
        )


def test_regression_parses_numbers_from_replies(chatty_model, tiny_tokenizer, fixed_replies):
    fixed_replies(["3.5", "about 2 I think", "no idea"])
    examples = [answered("How similar?", "3.0", 1, target=3.0), answered("And?", "2.0", 2, target=2.0),
                answered("Now?", "4.0", 3, target=4.0)]
    metrics, records = evaluate_model(chatty_model, tiny_tokenizer, examples, "regression", EvaluateConfig(), None, 256)
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
            chatty_model, tiny_tokenizer, [answered("When?", "soon", 1)], "regression", EvaluateConfig(), None, 256
        )


def test_generation_uses_every_reference(chatty_model, tiny_tokenizer, fixed_replies):
    fixed_replies(["Paris", "a dog runs"])
    examples = [
        answered("Capital of France?", "paris", 1),
        answered("Summarize.", "the cat sat", 2, meta={"references": ["the cat sat", "a dog runs"]}),
    ]
    metrics, records = evaluate_model(chatty_model, tiny_tokenizer, examples, "generation", EvaluateConfig(), None, 256)
    assert set(metrics) == {"bleu", "rouge_l", "exact_match", "loss", "perplexity"}
    assert metrics["exact_match"] == 1.0 and metrics["rouge_l"] == pytest.approx(1.0)
    assert [record["correct"] for record in records] == [True, True]
    assert records[1]["reference"] == "the cat sat"


def test_format_comparison_is_an_aligned_table():
    result = {
        "task": "classification", "num_examples": 3,
        "base": {"accuracy": 0.5, "loss": 2.0, "per_class": {}},
        "tuned": {"accuracy": 0.75, "loss": 1.25, "per_class": {}},
        "delta": {"accuracy": 0.25, "loss": -0.75},
    }
    result["base"]["f1"], result["tuned"]["f1"], result["delta"]["f1"] = 0.5, 0.5, -1e-9
    assert format_comparison(result) == "\n".join([
        "classification on 3 test rows",
        "metric   |   base |  tuned |   delta",
        "---------+--------+--------+--------",
        "accuracy | 0.5000 | 0.7500 | +0.2500",
        "loss     | 2.0000 | 1.2500 | -0.7500",
        "f1       | 0.5000 | 0.5000 | +0.0000",
    ])


# ---- evaluate_run on a fake run folder ------------------------------------------------------------------------


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return str(path)


@pytest.fixture()
def run_folder(tmp_path, tiny_model_dir, tiny_model):
    """A finished lora run: config.yaml, classification data files and a non-zero LoRA adapter as best."""
    from peft import LoraConfig, get_peft_model

    train = [{"text": "free prize call now", "label": "spam"}, {"text": "see you at lunch", "label": "ham"}]
    test = [
        {"text": "WINNER!! claim your cash", "label": "spam"}, {"text": "are we still meeting?", "label": "ham"},
        {"text": "free cash reward", "label": "spam"},
    ]
    data = DataConfig(
        train=write_jsonl(tmp_path / "train.jsonl", train), validation=write_jsonl(tmp_path / "val.jsonl", train),
        test=write_jsonl(tmp_path / "test.jsonl", test),
    )
    config = RunConfig(
        model=ModelConfig(name=str(tiny_model_dir)), data=data, method="lora",
        evaluate=EvaluateConfig(batch_size=2, max_new_tokens=4),
    )
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    save_config(config, run.config_path)
    adapter = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(tiny_model, adapter).save_pretrained(run.best)
    return run


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_evaluate_run_writes_eval_json_and_predictions(run_folder):
    result = evaluate_run(run_folder.root)
    assert json.loads(run_folder.eval_json.read_text(encoding="utf-8")) == result
    assert result["task"] == "classification"
    assert result["labels"] == ["ham", "spam"]
    assert result["num_examples"] == 3
    for name in ("accuracy", "f1", "loss", "perplexity"):
        assert result["delta"][name] == pytest.approx(result["tuned"][name] - result["base"][name])
    assert "per_class" not in result["delta"]

    lines = read_jsonl(run_folder.predictions)
    assert [line["source"].rsplit(":", 1)[1] for line in lines] == ["1", "2", "3"]
    assert lines[0]["prompt"].endswith("WINNER!! claim your cash")
    assert [line["reference"] for line in lines] == ["spam", "ham", "spam"]
    for line in lines:
        assert set(line) == {
            "source", "prompt", "reference", "base_prediction", "tuned_prediction", "base_correct", "tuned_correct",
            "base_scores", "tuned_scores",
        }
        assert line["tuned_correct"] == (line["tuned_prediction"] == line["reference"])
        assert line["base_scores"] != line["tuned_scores"]  # the adapter is not a no-op
    assert result["tuned"]["accuracy"] == pytest.approx(sum(line["tuned_correct"] for line in lines) / 3)


def test_compare_run_evaluates_the_base_model_when_eval_json_lacks_it(run_folder):
    first = evaluate_run(run_folder.root, include_base=False)
    assert first["base"] is None and first["delta"] == {}
    assert read_jsonl(run_folder.predictions)[0]["base_prediction"] is None

    table = compare_run(run_folder.root)
    result = json.loads(run_folder.eval_json.read_text(encoding="utf-8"))
    assert result["base"] is not None
    assert table.splitlines()[0] == "classification on 3 test rows"
    assert table.splitlines()[1].split() == ["metric", "|", "base", "|", "tuned", "|", "delta"]
    accuracy_row = next(line for line in table.splitlines() if line.startswith("accuracy"))
    assert accuracy_row.split("|")[2].strip() == f"{result['tuned']['accuracy']:.4f}"


def test_evaluate_run_needs_a_trained_model(run_folder):
    import shutil

    shutil.rmtree(run_folder.best)
    with pytest.raises(RunError, match="run `tunesmith train` first"):
        evaluate_run(run_folder.root)
