"""Fixtures of the evaluate tests."""

from __future__ import annotations

import pytest
import torch

from tunesmith.config import DataConfig, EvaluateConfig, ModelConfig, RunConfig, save_config
from tunesmith.run_dir import RunDir


@pytest.fixture()
def run_folder(tmp_path, tiny_model_dir, tiny_model, write_jsonl):
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



PAIRS = [("Say hello.", "Hello there!", "Go away."), ("Name a colour.", "Blue.", "Seven."),
         ("What is 2 + 2?", "4", "5"), ("Greet a friend.", "Hi, good to see you.", "No.")]


def _preference_examples(pairs=PAIRS, file: str = "pairs.jsonl") -> list:
    """Preference rows as the data stage gives them: the chosen turn last in ``messages``, the loser in ``rejected``."""
    from tunesmith.data.example import Example

    return [Example(({"role": "user", "content": prompt}, {"role": "assistant", "content": chosen}),
                    f"{file}:{number}", rejected={"role": "assistant", "content": rejected})
            for number, (prompt, chosen, rejected) in enumerate(pairs, start=1)]


def _as_preference_run(config, init_from=None, method: str = "dpo"):
    """``config`` as a preference run continuing from ``init_from``. A stand-in until the schema has `method: dpo`
    and `model.init_from` (issue 26's other parts): model_copy sets the fields without validating them."""
    model = config.model.model_copy(update={"init_from": init_from}) if init_from is not None else config.model
    return config.model_copy(update={"method": method, "model": model})


@pytest.fixture()
def preference_run(tmp_path, tiny_model_dir, run_folder):
    """``(config, run, splits)``: a finished dpo-style run (a non-zero LoRA adapter of its own) that continues from
    ``run_folder`` (model.init_from), with four held-out pairs as its test split."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from tunesmith.data.example import Splits
    from tunesmith.models.init_from import settle_init_from

    sft = run_folder.config()
    run = RunDir(tmp_path / "dpo")
    run.root.mkdir()
    save_config(sft, run.config_path)
    torch.manual_seed(11)
    adapter = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter).save_pretrained(run.best)
    splits = Splits(train=_preference_examples(file="train.jsonl"), validation=[], test=_preference_examples(),
                    format="preference")
    run_folder.train_summary.write_text('{"steps": 1}', encoding="utf-8")  # finished: a run to continue from
    config = _as_preference_run(sft, init_from=run_folder.root)
    settle_init_from(run, config)  # the record training writes of the weights it started from
    return config, run, splits


@pytest.fixture(scope="session")
def preference_examples():
    """``preference_examples(pairs=PAIRS, file="pairs.jsonl")``: preference `Example`s, one per (prompt, chosen,
    rejected)."""
    return _preference_examples


@pytest.fixture(scope="session")
def as_preference_run():
    """``as_preference_run(config, init_from=None, method="dpo")``: the config as a preference run."""
    return _as_preference_run
