"""The run's reference and eval.json's calibration block, written by evaluate_run on a tiny random model."""

from __future__ import annotations

import json

import pytest

from tunesmith.config import DataConfig, EvaluateConfig, ModelConfig, RunConfig, save_config
from tunesmith.data.run_inputs import RunInputs
from tunesmith.data.tokenize import prompt_token_ids
from tunesmith.evaluate.reference import NO_VALIDATION
from tunesmith.evaluate.runner import evaluate_run
from tunesmith.json_files import read_jsonl
from tunesmith.models import load_tokenizer
from tunesmith.results.reference import read_reference
from tunesmith.retrieval.novelty import NoveltyIndex
from tunesmith.run_dir import RunDir

TEXTS = ["WINNER!! claim your cash", "are we still meeting?", "free cash reward"]
"""The test rows' texts (tests/evaluate/conftest.py `run_folder`); its validation rows are its training rows."""


def evaluated(run: RunDir, **settings) -> dict:
    config = run.config()
    if settings:
        config = config.model_copy(update={"evaluate": config.evaluate.model_copy(update=settings)})
    return evaluate_run(config, run, RunInputs(config), include_base=False)


def test_the_reference_holds_one_value_per_held_out_row(run_folder, word_hash_embedder):
    result = evaluated(run_folder)
    reference = read_reference(run_folder.reference)
    assert reference.sources == {"validation": 2, "test": 3} and reference.rows == 5
    for values in (reference.novelty, reference.predicted_labels, reference.confidence):
        assert len(values) == 5
    assert reference.task == "classification" and reference.labels == ["ham", "spam"]
    assert reference.predicted_labels[2:] == [line["tuned_prediction"] for line in read_jsonl(run_folder.predictions)]
    assert reference.confidence_kind == "label_probability" and all(0.5 <= c <= 1 for c in reference.confidence)
    assert reference.temperature == result["calibration"]["temperature"] > 0
    # The validation rows are the training rows: seen in training, novelty 0; the test rows are further away.
    assert reference.novelty[:2] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert all(score > 0.05 for score in reference.novelty[2:])
    assert reference.embedder == word_hash_embedder.identity and reference.training_inputs == 2
    index = NoveltyIndex.load(run_folder.novelty, word_hash_embedder())
    assert index.scores(["see you at lunch"]) == pytest.approx([0.0], abs=1e-6)


def test_eval_json_has_the_calibration_block(run_folder):
    evaluated(run_folder)
    calibration = json.loads(run_folder.eval_json.read_text(encoding="utf-8"))["calibration"]
    # "note": when the tiny model happens to rank both validation rows right (no temperature is fitted then)
    assert set(calibration) - {"note"} == {"temperature", "validation_rows", "test_rows", "before", "after"}
    assert calibration["validation_rows"] == 2 and calibration["test_rows"] == 3
    for side in ("before", "after"):
        figures = calibration[side]
        assert set(figures) == {"rows", "ece", "ece_interval", "brier", "bins"} and figures["rows"] == 3
        assert 0 <= figures["ece"] <= 1 and 0 <= figures["brier"] <= 2 and len(figures["bins"]) == 10
        assert sum(b["count"] for b in figures["bins"]) == 3


def test_prompt_tokens_and_inputs_are_what_the_server_sees(run_folder):
    from tunesmith.serve.served import ServedModel

    config = run_folder.config()
    config = config.model_copy(update={"data": config.data.model_copy(update={"system_prompt": "You sort SMS."})})
    save_config(config, run_folder.config_path)
    evaluated(run_folder)
    reference = read_reference(run_folder.reference)
    tokenizer = load_tokenizer(config.model)
    served = ServedModel(name="run", tokenizer=tokenizer, adapter=None, system_prompt=config.data.system_prompt,
                         task="classification", labels=["ham", "spam"], data=config.data, run=None)
    texts = ["free prize call now", "see you at lunch", *TEXTS]
    assert reference.prompt_tokens == [len(prompt_token_ids(tokenizer, served.classification_prompt(text)))
                                       for text in texts]
    # The input novelty is measured on is the request's text; a chat request's user turn, instruction removed.
    for text in texts:
        prompt = served.classification_prompt(text)
        assert reference.input_of(messages=prompt) == text == reference.input_of(text=text)


def test_reference_off_writes_none_and_removes_an_earlier_one(run_folder):
    evaluated(run_folder)
    assert run_folder.reference.is_file() and run_folder.novelty.is_dir()
    result = evaluated(run_folder, reference=False)
    assert result["calibration"] == {"skipped": "evaluate.reference is false"}
    assert not run_folder.reference.exists() and not run_folder.novelty.exists()
    assert not list(run_folder.root.glob(".novelty*"))


def test_a_validation_split_answered_all_right_leaves_the_probabilities_as_they_are(run_folder, monkeypatch):
    from tunesmith.evaluate import reference as module

    monkeypatch.setattr(module, "every_row_ranked_right", lambda scores, targets: True)
    calibration = evaluated(run_folder)["calibration"]
    assert calibration["temperature"] == 1.0 and "answered all 2 validation rows right" in calibration["note"]
    assert calibration["before"] == calibration["after"]
    assert read_reference(run_folder.reference).temperature == 1.0


def test_without_validation_rows_there_is_no_temperature(run_folder):
    config = run_folder.config()
    data = config.data.model_copy(update={"validation": None, "split": config.data.split.model_copy(
        update={"validation": 0.0})})
    save_config(config.model_copy(update={"data": data}), run_folder.config_path)
    result = evaluated(run_folder)
    assert result["calibration"] == {"skipped": NO_VALIDATION}
    reference = read_reference(run_folder.reference)
    assert reference.sources == {"validation": 0, "test": 3} and reference.temperature is None
    assert len(reference.confidence) == 3 and reference.extra["temperature_skipped"] == NO_VALIDATION


def test_without_the_rag_extra_novelty_is_skipped_and_the_rest_written(run_folder, monkeypatch):
    from tunesmith import extras

    monkeypatch.setitem(extras.EXTRAS, "rag", ("tunesmith_no_such_module",))
    evaluated(run_folder)
    reference = read_reference(run_folder.reference)
    assert reference.novelty is None and "pip install 'tunesmith[rag]'" in reference.novelty_skipped
    assert "\n" not in reference.novelty_skipped
    assert len(reference.confidence) == 5 and not run_folder.novelty.exists()


def test_a_generation_run_records_sequence_confidence(tmp_path, tiny_model_dir, tiny_model, write_jsonl):
    from peft import LoraConfig, get_peft_model

    rows = [{"prompt": f"say {word}", "completion": word} for word in ("hello", "bye", "yes")]
    data = DataConfig(train=write_jsonl(tmp_path / "train.jsonl", rows), validation=write_jsonl(
        tmp_path / "val.jsonl", rows[:2]), test=write_jsonl(tmp_path / "test.jsonl", rows[1:]))
    config = RunConfig(model=ModelConfig(name=str(tiny_model_dir)), data=data, method="lora",
                       evaluate=EvaluateConfig(batch_size=2, max_new_tokens=3))
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    save_config(config, run.config_path)
    get_peft_model(tiny_model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])).save_pretrained(run.best)
    result = evaluate_run(config, run, RunInputs(config), include_base=False)
    reference = read_reference(run.reference)
    assert reference.task == "generation" and reference.confidence_kind == "sequence"
    assert len(reference.confidence) == 4 and all(0 < value <= 1 for value in reference.confidence)
    assert reference.predicted_labels is None and reference.temperature is None
    assert "skipped" in result["calibration"]
    assert reference.novelty[:2] == pytest.approx([0.0, 0.0], abs=1e-6)  # validation rows are training rows



def test_the_packaged_minilm_measures_novelty(run_folder, real_novelty_embedder):
    """The one test on the real embedding model (`monitor.embedding_model: default`)."""
    from tunesmith.retrieval.dense import SentenceEmbedder

    evaluated(run_folder)
    reference = read_reference(run_folder.reference)
    assert reference.embedder.startswith("sentence-transformers:")
    assert reference.novelty[:2] == pytest.approx([0.0, 0.0], abs=1e-4)  # validation rows are training rows
    assert all(0.05 < score < 1.5 for score in reference.novelty[2:])
    index = NoveltyIndex.load(run_folder.novelty, SentenceEmbedder("default", key="monitor.embedding_model"))
    assert index.scores(TEXTS) == pytest.approx(reference.novelty[2:], abs=1e-4)
