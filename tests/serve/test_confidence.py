"""Confidence through the real server (tiny models): `/v1/classify` gives the label probabilities calibrated with
the run's reference temperature, ``confidence`` and ``low_confidence``; chat and text completions give a sequence
confidence in a ``tunesmith`` object the openai client keeps (in the last chunk when streamed); a classification
run's chat answer that is one of its labels gives that label's calibrated probability; the log has them all."""

from __future__ import annotations

import json
import shutil

import httpx
import openai
import pytest
import torch

from tunesmith.cli import main
from tunesmith.errors import ConfigError
from tunesmith.monitor.request_log import read_log
from tunesmith.predict.calibration import calibrated_probabilities
from tunesmith.run_dir import RunDir
from tunesmith.serve.served import load_served


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="none", max_retries=0)


def requests_of(folder) -> dict[str, dict]:
    return {record["id"]: record for record in read_log(folder) if record["kind"] == "request"}


def raw_scores(state, name: str, prompt) -> dict[str, float]:
    model = state.served.models[name]
    return state.engine.classify(prompt, model.labels, model.adapter).result(60)


def test_classify_gives_calibrated_probabilities_and_flags_low_confidence(start_server, spam_runs, write_reference,
                                                                         tmp_path):
    a, b = spam_runs  # a has a reference (temperature 3), b was evaluated before references existed
    write_reference(a, ["win a free prize now", "see you at lunch"], labels=["ham", "spam"], temperature=3.0,
                    novelty=False)
    url, state = start_server(lambda: load_served([str(a), str(b)], serve_overrides=["serve.min_confidence=0.9"]))
    for name, temperature in ((a.name, 3.0), (b.name, None)):
        answer = httpx.post(f"{url}/v1/classify", json={"model": name, "text": "claim your free cash"}).json()
        scores = raw_scores(state, name, state.served.models[name].classification_prompt("claim your free cash"))
        assert answer["probabilities"] == pytest.approx(calibrated_probabilities(scores, temperature))
        if temperature:  # the check has teeth: the temperature changed the probabilities
            assert answer["probabilities"] != pytest.approx(calibrated_probabilities(scores), rel=1e-9, abs=1e-12)
        assert answer["label"] == max(scores, key=scores.get)
        assert answer["confidence"] == answer["probabilities"][answer["label"]]
        assert answer["low_confidence"] == (answer["confidence"] < 0.9)
        assert answer["calibrated"] is (temperature is not None)
        record = requests_of(tmp_path / "logs")[answer["id"]]
        assert record["probability"] == record["confidence"] == answer["confidence"]
        assert record["low_confidence"] == answer["low_confidence"]
        assert record["calibrated"] is answer["calibrated"]
        assert record["confidence_kind"] == "label_probability"


def test_min_confidence_comes_from_each_runs_config_and_set_overrides_it(spam_runs, error_of):
    from tunesmith.config import save_config

    run = RunDir(spam_runs[0])
    config = run.config()
    save_config(config.model_copy(update={"serve": config.serve.model_copy(update={"min_confidence": 0.7})}),
                run.config_path)
    assert load_served([str(run.root)]).models[run.root.name].min_confidence == 0.7
    overridden = load_served([str(run.root)], serve_overrides=["serve.min_confidence=0.8"])
    assert {name: model.min_confidence for name, model in overridden.models.items()} == {run.root.name: 0.8,
                                                                                         "base": 0.8}
    message = error_of(lambda: load_served([str(run.root)], serve_overrides=["monitor.max_error_rate=0.1"]))
    assert "monitor.max_error_rate" in message and "serve" in message


def test_serve_refuses_a_set_of_another_section_in_one_line(spam_runs, capsys):
    assert main(["serve", str(spam_runs[0]), "--set", "train.learning_rate=1"]) == 2
    error = capsys.readouterr().err.strip()
    assert "train.learning_rate" in error and "--set serve." in error and len(error.splitlines()) == 1
    with pytest.raises(ConfigError):
        load_served([str(spam_runs[0])], serve_overrides=["serve.min_confidence=2"])


def _expected_sequence_confidence(served, name: str, messages, max_tokens: int) -> tuple[str, float]:
    """The greedy answer by `generate` and the geometric mean of its tokens' probabilities under the model's raw
    distribution (the end-of-turn token that ended it included)."""
    from transformers import GenerationConfig

    from tunesmith.data.tokenize import prompt_token_ids

    model, tokenizer = served.model, served.models[name].tokenizer
    ids = torch.tensor([prompt_token_ids(tokenizer, messages)])
    config = GenerationConfig(max_new_tokens=max_tokens, do_sample=False, eos_token_id=sorted(served.stop_ids),
                              pad_token_id=tokenizer.pad_token_id)
    with torch.inference_mode():
        output = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config,
                                output_logits=True, return_dict_in_generate=True)
    chosen = output.sequences[0, ids.shape[1]:]
    logprobs = [torch.log_softmax(step[0].float(), -1)[token].item() for step, token in zip(output.logits, chosen)]
    text = tokenizer.decode([t for t in chosen.tolist() if t not in served.stop_ids], skip_special_tokens=True)
    return text, float(torch.tensor(logprobs).mean().exp())


def test_generation_answers_carry_their_sequence_confidence(start_server, chatty_model_dir, tmp_path):
    url, state = start_server(lambda: load_served([str(chatty_model_dir)],
                                                  serve_overrides=["serve.min_confidence=0.5"]))
    name = chatty_model_dir.name
    messages = [{"role": "user", "content": "tell me about the sea"}]
    text, expected = _expected_sequence_confidence(state.served, name, messages, 10)
    reply = client(url).chat.completions.create(model=name, messages=messages, max_tokens=10)
    assert reply.choices[0].message.content == text
    extra = reply.model_extra["tunesmith"]
    assert extra["confidence_kind"] == "sequence" and 0 < extra["confidence"] <= 1
    assert extra["confidence"] == pytest.approx(expected, rel=1e-4)
    assert extra["low_confidence"] == (extra["confidence"] < 0.5)

    chunks = list(client(url).chat.completions.create(model=name, messages=messages, max_tokens=10, stream=True,
                                                      stream_options={"include_usage": True}))
    (last,) = [chunk for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert last.model_extra["tunesmith"]["confidence"] == pytest.approx(expected, rel=1e-4)
    assert not [chunk for chunk in chunks if chunk is not last and "tunesmith" in (chunk.model_extra or {})]
    assert chunks[-1].usage.completion_tokens == reply.usage.completion_tokens

    completion = client(url).completions.create(model=name, prompt="tell me about the sea", max_tokens=10)
    assert completion.model_extra["tunesmith"]["confidence"] == pytest.approx(expected, rel=1e-4)
    records = requests_of(tmp_path / "logs")
    for answer_id in (reply.id, completion.id):
        record = records[answer_id]
        assert record["confidence"] == pytest.approx(expected, rel=1e-4)
        assert record["confidence_kind"] == "sequence" and "calibrated" not in record
        assert record["low_confidence"] == (record["confidence"] < 0.5)
    streamed = [record for record in records.values() if record["id"] == chunks[0].id]
    assert streamed and 0 < streamed[0]["confidence"] <= 1


def test_without_min_confidence_nothing_is_flagged(start_server, chatty_model_dir, tmp_path):
    url, _ = start_server(lambda: load_served([str(chatty_model_dir)]))
    reply = client(url).chat.completions.create(model=chatty_model_dir.name, max_tokens=4,
                                                messages=[{"role": "user", "content": "hi"}])
    assert "low_confidence" not in reply.model_extra["tunesmith"]
    assert "low_confidence" not in requests_of(tmp_path / "logs")[reply.id]


def test_a_classification_runs_chat_answer_that_is_a_label_reports_the_labels_probability(
        start_server, spam_runs, write_reference, tmp_path):
    a = spam_runs[0]
    messages = [{"role": "user", "content": "free prize"}]
    url, _ = start_server(lambda: load_served([str(a)]), log_dir=tmp_path / "first")
    said = client(url).chat.completions.create(model=a.name, messages=messages, max_tokens=3)
    answer = said.choices[0].message.content.strip()
    assert answer and answer not in ("ham", "spam")
    assert said.model_extra["tunesmith"]["confidence_kind"] == "sequence"  # not a label of this run
    # The same adapter, whose labels include what it answers.
    twin = tmp_path / "twin"
    shutil.copytree(a, twin)
    RunDir(twin).data_summary.write_text(json.dumps({"format": "classification", "labels": ["ham", answer]}))
    write_reference(twin, ["free prize"], labels=["ham", answer], temperature=2.0, novelty=False)
    url, state = start_server(lambda: load_served([str(twin)]), log_dir=tmp_path / "second")
    reply = client(url).chat.completions.create(model="twin", messages=messages, max_tokens=3)
    assert reply.choices[0].message.content.strip() == answer
    scores = raw_scores(state, "twin", state.served.models["twin"].conversation(messages))
    extra = reply.model_extra["tunesmith"]
    assert extra["confidence_kind"] == "label_probability"
    assert extra["confidence"] == pytest.approx(calibrated_probabilities(scores, 2.0)[answer])
    record = requests_of(tmp_path / "second")[reply.id]
    assert record["confidence"] == extra["confidence"] and record["calibrated"] is True
