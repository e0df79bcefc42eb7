"""Tiny run folders as training leaves them: a config and a best checkpoint (LoRA or DoRA adapter, or full
model)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tunesmith.config import save_config, validate_config
from tunesmith.run_dir import RunDir

TINY_LORA = {"r": 4, "alpha": 8.0, "dropout": 0.0, "target_modules": ["q_proj", "v_proj", "o_proj", "down_proj"]}


def write_config(root: Path, model_dir: Path, method: str) -> RunDir:
    run = RunDir(root)
    root.mkdir(parents=True, exist_ok=True)
    config = validate_config({
        "model": {"name": str(model_dir)}, "data": {"train": "train.jsonl"}, "method": method, "lora": TINY_LORA,
    })
    save_config(config, run.config_path)
    return run


def adapter_run(root: Path, model_dir: Path, method: str) -> Path:
    """A run of an adapter method whose adapter has random, non-zero lora_B, so merging really changes the weights."""
    from transformers import AutoModelForCausalLM

    from tunesmith.models import add_lora

    run = write_config(root, model_dir, method)
    model = add_lora(AutoModelForCausalLM.from_pretrained(model_dir), run.config().lora, dora=method == "dora")
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    model.save_pretrained(run.best)
    return run.root


@pytest.fixture()
def lora_run(tmp_path, tiny_model_dir) -> Path:
    return adapter_run(tmp_path / "lora-run", tiny_model_dir, "lora")


@pytest.fixture()
def dora_run(tmp_path, tiny_model_dir) -> Path:
    return adapter_run(tmp_path / "dora-run", tiny_model_dir, "dora")


@pytest.fixture()
def full_run(tmp_path, tiny_model_dir) -> Path:
    """A full fine-tune run: the best checkpoint is the base with every weight nudged, so it differs from it."""
    from transformers import AutoModelForCausalLM

    run = write_config(tmp_path / "full-run", tiny_model_dir, "full")
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    generator = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    model.save_pretrained(run.best)
    return run.root


@pytest.fixture()
def merged_run(tmp_path, tiny_model_dir, tiny_tokenizer):
    """``merged_run(model, name="merged-run") -> Path``: a run folder whose ``merged/`` export is ``model`` with the
    tiny tokenizer, as `export_run` leaves it: for exports that start from ``merged/`` (GGUF)."""
    def make(model, name: str = "merged-run") -> Path:
        run = write_config(tmp_path / name, tiny_model_dir, "full")
        model.save_pretrained(run.merged)
        tiny_tokenizer.save_pretrained(run.merged)
        return run.root

    return make


# ---- serving -------------------------------------------------------------------------------------------------------

SPAM_TEXTS = ["win a free prize now", "see you at lunch", "claim your cash reward today", "are we still meeting?",
              "free entry call now", "bring the notes tomorrow", "WINNER!! you have won", "lunch at noon?"]


@pytest.fixture(scope="session")
def chatty_model_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """The tiny Llama with large random weights, saved: greedy replies vary with the prompt (the stock init repeats
    one token), so batching or cache mistakes change answers."""
    folder = tmp_path_factory.mktemp("chatty-llama")
    model = _chatty(len(tiny_tokenizer))
    model.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


def _chatty(vocab_size: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True, bos_token_id=1,
        eos_token_id=2, pad_token_id=2,
    )
    model = LlamaForCausalLM(config).eval()
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model


def classification_run(root: Path, model_dir: Path, data_dir: Path, seed: int) -> Path:
    """A finished LoRA classification run (spam/ham): data files, data_summary.json and a random non-zero adapter."""
    import json

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    data_dir.mkdir(exist_ok=True)
    rows = [{"text": text, "label": "spam" if i % 2 == 0 else "ham"} for i, text in enumerate(SPAM_TEXTS)]
    for split in ("train", "val", "test"):
        (data_dir / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    run = RunDir(root)
    root.mkdir(parents=True)
    config = validate_config({
        "model": {"name": str(model_dir)}, "method": "lora", "lora": TINY_LORA,
        "data": {"train": str(data_dir / "train.jsonl"), "validation": str(data_dir / "val.jsonl"),
                 "test": str(data_dir / "test.jsonl"), "system_prompt": "You sort messages."},
        "evaluate": {"batch_size": 3, "compare_base": False},
    })
    save_config(config, run.config_path)
    run.data_summary.write_text(json.dumps({"format": "classification", "labels": ["ham", "spam"]}))
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    adapter = LoraConfig(r=4, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(model, adapter).save_pretrained(run.best)
    return root


@pytest.fixture()
def spam_runs(tmp_path, chatty_model_dir) -> tuple[Path, Path]:
    """Two classification runs (different adapters) on one base."""
    return (classification_run(tmp_path / "spam-a", chatty_model_dir, tmp_path / "data", seed=1),
            classification_run(tmp_path / "spam-b", chatty_model_dir, tmp_path / "data", seed=2))


@pytest.fixture()
def start_server(tmp_path):
    """``start_server(load, **settings) -> (base_url, app_state)``: a server on a free loopback port in a thread,
    returned once /ready says ready; stopped (gracefully) after the test."""
    import threading
    import time

    import httpx
    import uvicorn

    from tunesmith import distributed
    from tunesmith.deploy.server import ServerSettings, create_app

    running = []

    def start(load, **settings):
        port = distributed.free_port()
        settings = ServerSettings(port=port, log_dir=settings.pop("log_dir", tmp_path / "logs"), **settings)
        app = create_app(load, settings)
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        running.append((server, thread))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/ready").status_code == 200:
                    return url, app.state.tunesmith
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("the server did not become ready")

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(30)
