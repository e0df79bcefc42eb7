"""export_run: the merged model equals base+adapter, loads with plain transformers, and is written atomically."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tunesmith.config import save_config, validate_config
from tunesmith.data.example import Splits
from tunesmith.data.run_inputs import RunInputs
from tunesmith.errors import RunError
from tunesmith.export import export_run, write_model_cards
from tunesmith.run_dir import RunDir
from tunesmith.train import train

TOKENS = torch.tensor([[1, 40, 77, 150, 9, 300, 2, 64]])

# Runs in a fresh interpreter that never imports tunesmith or peft: proof that merged/ stands alone.
STANDALONE_LOGITS = """
import sys, torch
from transformers import AutoModelForCausalLM
assert "peft" not in sys.modules and "tunesmith" not in sys.modules
model = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
with torch.no_grad():
    logits = model(torch.load(sys.argv[2])).logits
assert "peft" not in sys.modules and "tunesmith" not in sys.modules
torch.save(logits, sys.argv[3])
"""


def export(root: Path) -> dict[str, Path]:
    run = RunDir(root)
    return {kind: Path(folder) for kind, folder in export_run(run.config(), run).items()}


def logits_of(model) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(TOKENS).logits


def peft_logits(model_dir: Path, adapter: Path) -> torch.Tensor:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    return logits_of(PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model_dir), adapter))


@pytest.mark.parametrize("method", ["lora", "dora"])
def test_merged_model_matches_base_plus_adapter_in_plain_transformers(method, request, tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    root = request.getfixturevalue(f"{method}_run")
    run = RunDir(root)
    expected = peft_logits(tiny_model_dir, run.best)
    base = logits_of(AutoModelForCausalLM.from_pretrained(tiny_model_dir))
    assert (expected - base).abs().max() > 1e-2  # the adapter really changes the model, so the check below bites

    assert export(root) == {"adapter": run.adapter, "merged": run.merged}
    assert json.loads((run.adapter / "adapter_config.json").read_text())["use_dora"] == (method == "dora")

    tokens, out = tmp_path / "tokens.pt", tmp_path / "out.pt"
    torch.save(TOKENS, tokens)
    command = [sys.executable, "-c", STANDALONE_LOGITS, str(run.merged), str(tokens), str(out)]
    subprocess.run(command, check=True, capture_output=True, timeout=120)
    merged = torch.load(out)
    assert merged.shape == expected.shape
    assert (merged - expected).abs().max().item() < 1e-5


def test_merged_folder_is_ready_for_generation(lora_run):
    merged = export(lora_run)["merged"]
    config = json.loads((merged / "config.json").read_text())
    generation = json.loads((merged / "generation_config.json").read_text())
    assert "quantization_config" not in config
    assert config["use_cache"] is True
    assert generation["eos_token_id"] == 2  # <|im_end|> of the tiny ChatML tokenizer
    assert generation["pad_token_id"] == 2
    assert (merged / "model.safetensors").is_file() and (merged / "tokenizer.json").is_file()
    assert not (merged / "adapter_config.json").exists()


def test_adapter_folder_loads_with_peft_and_describes_itself(lora_run, tiny_model_dir, tiny_tokenizer):
    from transformers import AutoTokenizer

    run = RunDir(lora_run)
    eval_data = {"task": "classification", "base": {"accuracy": 0.5, "f1": 0.4}, "tuned": {"accuracy": 0.75, "f1": 0.7},
                 "baselines": {"tfidf_logreg": {"accuracy": 0.7, "f1": 0.6, "train_seconds": 0.5}}}
    run.eval_json.write_text(json.dumps(eval_data))
    adapter = export(lora_run)["adapter"]

    assert torch.equal(peft_logits(tiny_model_dir, adapter), peft_logits(tiny_model_dir, run.best))
    text = "Classify the message as ham or spam."
    assert AutoTokenizer.from_pretrained(adapter)(text)["input_ids"] == tiny_tokenizer(text)["input_ids"]
    card = (adapter / "README.md").read_text()
    assert str(tiny_model_dir) in card
    assert "LoRA r=4, alpha=8, targets q_proj, v_proj, o_proj, down_proj" in card
    assert "| accuracy | 0.5000 | 0.7500 | +0.2500 | 0.7000 |" in card
    assert "| f1 | 0.4000 | 0.7000 | +0.3000 | 0.6000 |" in card
    assert ("The tuned model beats TF-IDF + logistic regression, the best baseline, by +0.0500 accuracy (0.7500 vs "
            "0.7000).") in " ".join(card.split())
    assert "method: lora" in card  # the config block


def test_the_model_card_says_the_gate_result_and_is_written_again_once_gated(lora_run, gate_example):
    run = RunDir(lora_run)
    run.eval_json.write_text(json.dumps({"task": "classification", "base": {"accuracy": 0.5},
                                         "tuned": {"accuracy": 0.75}}))
    export(lora_run)
    card = (run.adapter / "README.md").read_text()
    assert "## Release gate" in card and "Not gated when this card was written: \\`tunesmith gate" in card
    gate_example(run.root, failed=("against_baseline",))
    assert write_model_cards(run.config(), run) == [run.adapter / "README.md", run.merged / "README.md"]
    for folder in (run.adapter, run.merged):
        card = (folder / "README.md").read_text()
        gate = card.split("## Release gate")[1].split("## Config")[0]
        assert "Gate failed: against_baseline (against_baseline failed: &lt;b&gt;below&lt;/b&gt; its threshold)" in gate
        assert "The tuned model keeps 97.0% \\[95.0%, 99.0%\\] of the base model's general ability" in gate
        assert "| not worse than the best classic baseline (against_baseline) | failed |" in gate
    run.eval_json.write_text(json.dumps({"task": "classification", "tuned": {"accuracy": 0.8}}))
    write_model_cards(run.config(), run)
    assert "This gate is stale:" in (run.merged / "README.md").read_text()


def test_export_replaces_an_older_export_and_leaves_no_staging_folders(lora_run):
    run = RunDir(lora_run)
    for folder in (run.adapter, run.merged):
        folder.mkdir()
        (folder / "stale.txt").write_text("from an older export")
    export(lora_run)
    assert not (run.adapter / "stale.txt").exists() and not (run.merged / "stale.txt").exists()
    assert (run.adapter / "adapter_model.safetensors").is_file()
    assert sorted(path.name for path in run.root.iterdir()) == ["adapter", "checkpoints", "config.yaml",
                                                                  "merged"]  # no staging, no journal, no lock file


def test_full_run_exports_the_checkpoint_weights_and_no_adapter(full_run, tiny_model_dir):
    from transformers import AutoModelForCausalLM

    run = RunDir(full_run)
    assert export(full_run) == {"merged": run.merged}
    assert not run.adapter.exists()
    merged = logits_of(AutoModelForCausalLM.from_pretrained(run.merged))
    assert torch.equal(merged, logits_of(AutoModelForCausalLM.from_pretrained(run.best)))
    assert not torch.equal(merged, logits_of(AutoModelForCausalLM.from_pretrained(tiny_model_dir)))
    assert (run.merged / "tokenizer.json").is_file() and (run.merged / "README.md").is_file()


def test_lora_run_without_adapter_weights_is_a_run_error(lora_run):
    (RunDir(lora_run).best / "adapter_model.safetensors").unlink()
    with pytest.raises(RunError, match="missing adapter_model.safetensors"):
        export(lora_run)


def test_run_without_checkpoint_is_a_run_error(lora_run):
    import shutil

    shutil.rmtree(RunDir(lora_run).checkpoints)
    with pytest.raises(RunError, match="run `tunesmith train` first"):
        export(lora_run)


def test_export_saves_the_chosen_template(tmp_path, tiny_model_dir):
    """Chat and any downstream user load the exported tokenizer: it must render with the trained template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunesmith.models.templates import BUILTIN_TEMPLATES

    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    config = validate_config({"model": {"name": str(tiny_model_dir), "chat_template": "llama-3"},
                              "data": {"train": "train.jsonl"}, "method": "full"})
    save_config(config, run.config_path)
    assert yaml.safe_load(run.config_path.read_text())["model"]["chat_template"] == "llama-3"
    AutoModelForCausalLM.from_pretrained(tiny_model_dir).save_pretrained(run.best)
    merged = export_run(config, run)["merged"]
    exported = AutoTokenizer.from_pretrained(merged)
    assert exported.chat_template == BUILTIN_TEMPLATES["llama-3"]


# Runs in a fresh interpreter that has only the Hugging Face cache: the adapter finds its base by the name it gives.
ADAPTER_ELSEWHERE = """
import sys, torch
from peft import AutoPeftModelForCausalLM
model = AutoPeftModelForCausalLM.from_pretrained(sys.argv[1]).eval()
with torch.no_grad():
    torch.save(model(torch.load(sys.argv[2])).logits, sys.argv[3])
"""


def test_a_hub_model_run_exports_an_adapter_that_loads_elsewhere_by_its_hub_id(hub_cache, tiny_model_dir, tmp_path,
                                                                                 spam_examples):
    snapshot = hub_cache.add("owner/tiny-llama", tiny_model_dir, ref="v1")
    config = validate_config({
        "model": {"name": "owner/tiny-llama", "revision": "v1"}, "data": {"train": "unused.jsonl", "max_length": 160},
        "lora": {"r": 4, "alpha": 8}, "train": {"max_steps": 2, "batch_size": 4, "eval_every": 2},
    })
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    save_config(config, run.config_path)
    splits = Splits(train=spam_examples(8), validation=spam_examples(2, 100), test=[], format="classification",
                    labels=["ham", "spam"])
    train(config, run, RunInputs(config, splits))  # offline (HF_HUB_OFFLINE=1): the base comes from the cache
    for folder in (run.best, run.checkpoints / "step-000002" / "weights"):
        saved = json.loads((folder / "adapter_config.json").read_text())
        assert (saved["base_model_name_or_path"], saved["revision"]) == ("owner/tiny-llama", "v1")

    adapter = export(run.root)["adapter"]
    saved = json.loads((adapter / "adapter_config.json").read_text())
    assert (saved["base_model_name_or_path"], saved["revision"]) == ("owner/tiny-llama", "v1")
    assert "Fine-tuned from owner/tiny-llama (revision v1) with tunesmith" in (adapter / "README.md").read_text()

    tokens, out = tmp_path / "tokens.pt", tmp_path / "out.pt"
    torch.save(TOKENS, tokens)
    elsewhere = {**os.environ, "HF_HUB_CACHE": str(hub_cache.root), "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, "-c", ADAPTER_ELSEWHERE, str(adapter), str(tokens), str(out)], check=True,
                   capture_output=True, timeout=120, env=elsewhere, cwd=tmp_path)
    assert torch.allclose(torch.load(out), peft_logits(snapshot, adapter), atol=1e-6)


def test_a_continuing_run_exports_the_sft_model_and_its_own_adapter_together(init_from_run, lora_run, tiny_model_dir):
    """merged/ of a run with model.init_from is base + the SFT run's adapter + the run's adapter; its adapter/ card
    says it applies on top of the SFT run's merged weights, and that recipe gives the same model."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run, sft = RunDir(init_from_run), RunDir(lora_run)
    sft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), sft.best)
    expected = logits_of(PeftModel.from_pretrained(sft_model.merge_and_unload(), run.best))
    assert (expected - peft_logits(tiny_model_dir, sft.best)).abs().max() > 1e-2  # the second adapter counts

    assert export(init_from_run) == {"adapter": run.adapter, "merged": run.merged}
    merged = logits_of(AutoModelForCausalLM.from_pretrained(run.merged))
    assert (merged - expected).abs().max().item() < 1e-5

    card = " ".join((run.adapter / "README.md").read_text().split())
    assert (f"This adapter applies on top of the merged weights of the run {sft.root.name}, not on "
            f"{tiny_model_dir} alone: running tunesmith export {sft.root} writes them to {sft.merged}.") in card
    assert f"Fine-tuned from the run {sft.root.name} ({tiny_model_dir} with that run's weights merged in)" in card
    assert f"Fine-tuned from the run {sft.root.name} (" in (run.merged / "README.md").read_text()
    export(lora_run)  # the card's recipe: the SFT run's merged export, then this adapter
    recipe = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(sft.merged), run.adapter)
    assert (logits_of(recipe) - expected).abs().max().item() < 1e-5
