"""Tiny run folders as training leaves them: a config and a best checkpoint (LoRA or DoRA adapter, or full
model); run folders as serving sees them, and request logs as the server writes them."""

from __future__ import annotations

import contextlib
import json
import random
import string
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import torch

from tunesmith import distributed
from tunesmith.config import save_config, validate_config
from tunesmith.data.splits import load_run_splits
from tunesmith.data.tokenize import prompt_token_ids
from tunesmith.deploy.request_log import RequestLog, write_manifest
from tunesmith.deploy.server import ServerSettings, create_app
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
def chatty_model_dir(tmp_path_factory, tiny_tokenizer, build_chatty_model) -> Path:
    """The tiny Llama with large random weights, saved: greedy replies vary with the prompt (the stock init repeats
    one token), so batching or cache mistakes change answers."""
    folder = tmp_path_factory.mktemp("chatty-llama")
    model = build_chatty_model(len(tiny_tokenizer))
    model.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


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
def start_server(tmp_path, serving):
    """``start_server(load, **settings) -> (base_url, app_state)``: a server on a free loopback port in a thread,
    returned once /ready says ready; stopped (gracefully) after the test."""
    with contextlib.ExitStack() as running:
        def start(load, **settings):
            settings = ServerSettings(port=distributed.free_port(), log_dir=settings.pop("log_dir", tmp_path / "logs"),
                                      **settings)
            app = create_app(load, settings)
            url = running.enter_context(serving(app, "/ready", timeout_s=60, port=settings.port))
            return url, app.state.tunesmith

        yield start


# ---- served runs and their request logs (monitor, drift, feedback) ---------------------------------------------

START = datetime(2026, 11, 30, 8, 0, tzinfo=timezone.utc)


def _run_folder(root: Path, model_dir: Path, rows: list, data: dict | None = None, monitor: dict | None = None,
                ) -> RunDir:
    """A run folder as serving sees it: its config (data in ``data.jsonl`` beside it, split by fractions) and
    no weights (the monitor and the feedback export read the config and the data, never the model)."""
    root.mkdir(parents=True, exist_ok=True)
    data_file = root.parent / f"{root.name}-data.jsonl"
    data_file.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    run = RunDir(root)
    config = validate_config({"model": {"name": str(model_dir)}, "data": {"path": str(data_file), **(data or {})},
                              "monitor": monitor or {}})
    save_config(config, run.config_path)
    return run


@pytest.fixture()
def run_folder(tmp_path, tiny_model_dir):
    """``run_folder(name, rows, data=None, monitor=None) -> RunDir``: a run folder under tmp_path whose data is
    ``rows`` (``data`` and ``monitor`` are extra config settings)."""
    return lambda name, rows, data=None, monitor=None: _run_folder(tmp_path / name, tiny_model_dir, rows, data,
                                                                   monitor)


def _request(number: int, **fields) -> dict:
    """A request record of the log's schema, answered at ``START + number`` seconds: a chat completion unless
    ``fields`` say otherwise (a ``text`` makes it a classification)."""
    classify = "text" in fields
    record = {
        "kind": "request", "id": f"req-{number}", "time": (START + timedelta(seconds=number)).isoformat(),
        "model": "tuned", "route": "/v1/classify" if classify else "/v1/chat/completions", "status": 200,
        "latency_s": 0.1, "ttft_s": None if classify else 0.02, "prompt_tokens": 20, "completion_tokens": 1,
        "finish_reason": "stop",
    }
    return {**record, **fields}


@pytest.fixture(scope="session")
def request_record():
    """``request_record(number, **fields) -> dict``: a request record (see `_request`)."""
    return _request


def _write_log(folder: Path, records: list[dict], manifest: dict | None = None, **options) -> Path:
    log = RequestLog(folder, **options)
    for record in records:
        log.write(record)
    log.close()
    if manifest is not None:
        write_manifest(folder, manifest)
    return folder


@pytest.fixture(scope="session")
def write_log():
    """``write_log(folder, records, manifest=None, **RequestLog options) -> folder``: a request log as the server
    writes it (and its served.json when ``manifest`` is given)."""
    return _write_log


@pytest.fixture()
def spam_run(run_folder, spam_rows):
    """A classification run of 60 `spam_rows` (48 of them training rows)."""
    return run_folder("spam-run", spam_rows(60))


def _live_requests(tokenizer, run: RunDir, kind: str, count: int | None = None) -> list[dict]:
    rng = random.Random(0)
    records = []
    for number, example in enumerate(load_run_splits(run.config().data).train[:count]):
        tokens = len(prompt_token_ids(tokenizer, example.prompt_messages))
        text = example.messages[-2]["content"].split("\n\n", 1)[1]  # the row's text, after the instruction
        if kind == "shifted":
            text = " ".join("".join(rng.choices(string.ascii_lowercase, k=7)) for _ in range(12))
            records.append(_request(number, text=text, label="spam", probability=0.4, prompt_tokens=tokens + 100))
        else:
            records.append(_request(number, text=text, label=example.label, probability=0.95, prompt_tokens=tokens))
    return records


@pytest.fixture()
def live_requests(tiny_tokenizer):
    """``live_requests(run, kind, count=None) -> records``: classification requests for a run of `tiny_model_dir`,
    one per training row (the first ``count``). ``"familiar"``: the training rows themselves (their texts, labels
    and prompt lengths) predicted with confidence. ``"shifted"``: random texts 100 tokens longer, all predicted
    spam, with low confidence."""
    return lambda run, kind, count=None: _live_requests(tiny_tokenizer, run, kind, count)
