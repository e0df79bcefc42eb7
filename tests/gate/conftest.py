"""Runs for the gate's general-ability tests. The base is the tiny Llama fitted to the first general prompts'
reference replies (so it has a "general ability" to lose); on it, an untouched LoRA adapter (the base's function
exactly), an adapter trained to answer every prompt with one word, and a full fine-tune."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from tunesmith.config import save_config, validate_config
from tunesmith.data.example import Example
from tunesmith.data.tokenize import tokenize_batch
from tunesmith.gate.general import general_examples
from tunesmith.models import add_lora
from tunesmith.predict import supervised_loss_sum
from tunesmith.predict.model_inputs import collate
from tunesmith.run_dir import RunDir

GENERAL_GATE = {"general_rows": 8, "general_max_new_tokens": 6, "resamples": 300}
"""Few prompts and short answers (and rows cut at `SCORED_TOKENS`): a measurement takes about a second."""
SCORED_TOKENS = 128


def gate_run(root: Path, model_dir: Path, method: str, lora: dict, **gate) -> RunDir:
    run = RunDir(root)
    root.mkdir(parents=True, exist_ok=True)
    config = validate_config({"model": {"name": str(model_dir)}, "data": {"train": "train.jsonl"}, "method": method,
                              "lora": lora, "gate": {**GENERAL_GATE, **gate}})
    save_config(config, run.config_path)
    return run


def fit(model, tokenizer, rows: list[Example], steps: int, learning_rate: float):
    """``model`` after ``steps`` full-batch Adam steps on the supervised loss of ``rows``."""
    torch.manual_seed(0)
    batch = collate(tokenize_batch(rows, tokenizer, SCORED_TOKENS), tokenizer.pad_token_id)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    model.train()
    for _ in range(steps):
        total, count = supervised_loss_sum(model, batch)
        (total / count).backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


@pytest.fixture(scope="session")
def general_base_dir(tmp_path_factory, tiny_model_dir, tiny_tokenizer) -> Path:
    """The tiny Llama fitted to the reference replies of the prompts the tests score, saved with its tokenizer."""
    from transformers import AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("general-base")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    fit(model, tiny_tokenizer, general_examples(GENERAL_GATE["general_rows"]), steps=60, learning_rate=1e-2)
    model.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


def one_answer_adapter(model_dir: Path, tokenizer, run: RunDir, answer: str) -> None:
    """Train ``run``'s LoRA adapter until the model answers every general prompt with ``answer``."""
    from transformers import AutoModelForCausalLM

    model = add_lora(AutoModelForCausalLM.from_pretrained(model_dir), run.config().lora)
    rows = [Example(messages=(*example.prompt_messages, {"role": "assistant", "content": answer}),
                    location=example.location) for example in general_examples(GENERAL_GATE["general_rows"])]
    fit(model, tokenizer, rows, steps=40, learning_rate=2e-2).save_pretrained(run.best)


@pytest.fixture()
def general_cache(tmp_path, monkeypatch) -> Path:
    """A private evaluation cache, so no test reuses another's base numbers; rows scored up to `SCORED_TOKENS`."""
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("tunesmith.gate.general.GENERAL_MAX_LENGTH", SCORED_TOKENS)
    return tmp_path / "cache"


@pytest.fixture()
def untouched_adapter_run(tmp_path, general_base_dir, tiny_lora) -> RunDir:
    """A LoRA run whose adapter is as peft creates it (lora_B zero): the tuned model is the base."""
    from transformers import AutoModelForCausalLM

    run = gate_run(tmp_path / "untouched", general_base_dir, "lora", tiny_lora)
    add_lora(AutoModelForCausalLM.from_pretrained(general_base_dir), run.config().lora).save_pretrained(run.best)
    return run


@pytest.fixture(scope="session")
def spam_adapter_dir(tmp_path_factory, general_base_dir, tiny_tokenizer, tiny_lora) -> Path:
    """A LoRA adapter of the general base trained to answer every prompt with "spam" (trained once)."""
    run = gate_run(tmp_path_factory.mktemp("spam-adapter"), general_base_dir, "lora", tiny_lora)
    one_answer_adapter(general_base_dir, tiny_tokenizer, run, "spam")
    return run.best


@pytest.fixture()
def one_answer_run(tmp_path, general_base_dir, spam_adapter_dir, tiny_lora) -> RunDir:
    """A LoRA run whose adapter answers every prompt with "spam"."""
    run = gate_run(tmp_path / "one-answer", general_base_dir, "lora", tiny_lora)
    shutil.copytree(spam_adapter_dir, run.best)
    return run


@pytest.fixture()
def nudged_full_run(tmp_path, general_base_dir, save_nudged_model, tiny_lora) -> RunDir:
    """A full fine-tune whose weights are the base's, each nudged by seeded noise."""
    run = gate_run(tmp_path / "full", general_base_dir, "full", tiny_lora)
    save_nudged_model(general_base_dir, run.best, seed=3)
    return run
