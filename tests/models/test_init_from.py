"""`model.init_from`: a run's base model is the merged best weights of the run it continues from, everywhere the
base loads; its fingerprint holds those weights; chains of runs work; the config takes the model from that run."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from tunesmith.config import ModelConfig, load_config
from tunesmith.models import load_base_model, load_tuned_model
from tunesmith.models.fingerprint import model_fingerprint
from tunesmith.models.init_from import base_fingerprint, check_init_from, init_chain
from tunesmith.run_dir import RunDir

TOKENS = torch.tensor([[1, 40, 77, 150, 9, 300, 2, 64]])
CPU = torch.device("cpu")


def logits_of(model) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(TOKENS).logits


def peft_merged(model, adapter: Path):
    from peft import PeftModel

    return PeftModel.from_pretrained(model, adapter).merge_and_unload()


def test_the_base_of_a_continuing_run_is_the_merged_sft_model(init_from_run, lora_run, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    config = RunDir(init_from_run).config()
    starting = logits_of(load_base_model(config.model, CPU)[0])
    sft = logits_of(load_tuned_model(lora_run, CPU, merge=True)[0])
    plain = logits_of(AutoModelForCausalLM.from_pretrained(tiny_model_dir))
    assert (sft - plain).abs().max() > 1e-2  # the SFT adapter really changes the model, so the check below bites
    assert torch.allclose(starting, sft, atol=1e-5)


def test_the_tuned_model_is_base_plus_sft_plus_the_new_adapter(init_from_run, lora_run, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    by_hand = peft_merged(peft_merged(AutoModelForCausalLM.from_pretrained(tiny_model_dir), RunDir(lora_run).best),
                          RunDir(init_from_run).best)
    expected = logits_of(by_hand)
    sft = logits_of(load_tuned_model(lora_run, CPU, merge=True)[0])
    assert (expected - sft).abs().max() > 1e-2  # the new adapter changes the SFT model
    for merge in (False, True):
        assert torch.allclose(logits_of(load_tuned_model(init_from_run, CPU, merge=merge)[0]), expected, atol=1e-5)


def test_the_fingerprint_holds_the_init_from_weights(init_from_run, lora_run, tiny_model_dir):
    config = RunDir(init_from_run).config()
    plain = ModelConfig(name=str(tiny_model_dir))
    assert base_fingerprint(plain) == model_fingerprint(tiny_model_dir)  # a plain base's keys stay what they were
    continued = base_fingerprint(config.model)
    assert continued != base_fingerprint(plain)
    # The SFT run's adapter trained further: another fingerprint (and the continuing run is refused).
    adapter = RunDir(lora_run).best / "adapter_model.safetensors"
    from safetensors.torch import load_file, save_file

    weights = load_file(adapter)
    save_file({name: tensor * 1.5 for name, tensor in weights.items()}, adapter)
    assert base_fingerprint(config.model) not in (continued, base_fingerprint(plain))


def test_a_chain_of_runs_builds_its_base_run_by_run(init_from_run, lora_run, tiny_model_dir, tmp_path,
                                                    continuing_run):
    third = continuing_run(tmp_path / "third", init_from_run, tiny_model_dir, seed=12)
    config = RunDir(third).config()
    assert [run.root for run in init_chain(config.model)] == [Path(init_from_run), Path(lora_run)]
    assert torch.allclose(logits_of(load_base_model(config.model, CPU)[0]),
                          logits_of(load_tuned_model(init_from_run, CPU, merge=True)[0]), atol=1e-5)
    check_init_from(RunDir(third))
    assert base_fingerprint(config.model) != base_fingerprint(RunDir(init_from_run).config().model)


def test_a_full_run_continues_from_its_full_weights(full_run, tiny_model_dir, tmp_path, monkeypatch, continuing_run):
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    run = continuing_run(tmp_path / "after-full", full_run, tiny_model_dir)
    config = RunDir(run).config()
    full = logits_of(load_tuned_model(full_run, CPU)[0])
    assert torch.allclose(logits_of(load_base_model(config.model, CPU)[0]), full, atol=1e-6)


def test_the_config_takes_the_model_of_the_run(init_from_run, lora_run, tmp_path):
    sft = RunDir(lora_run).config()
    path = tmp_path / "dpo.yaml"
    path.write_text(yaml.safe_dump({"model": {"init_from": str(lora_run)}, "data": {"train": "train.jsonl"},
                                    "method": "lora"}), encoding="utf-8")
    config = load_config(path)
    assert config.model.name == sft.model.name and config.model.chat_template == sft.model.chat_template
    assert config.model.init_from == str(lora_run)
    relative = tmp_path / "relative.yaml"
    relative.write_text(yaml.safe_dump({"model": {"init_from": Path(lora_run).name, "chat_template": "chatml"},
                                        "data": {"train": "train.jsonl"}}), encoding="utf-8")
    config = load_config(relative)
    assert Path(config.model.init_from) == Path(lora_run).resolve() and config.model.chat_template == "chatml"


def test_the_merged_weights_take_this_run_s_dtype(init_from_run):
    config = RunDir(init_from_run).config()
    model, _ = load_base_model(config.model.model_copy(update={"dtype": "bfloat16"}), CPU)
    assert {parameter.dtype for parameter in model.parameters()} == {torch.bfloat16}
    assert not model.training
