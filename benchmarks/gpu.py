"""tunesmith vs TRL's SFTTrainer on one CUDA GPU, side by side in one run: real (non-padding) tokens/s, peak GPU
memory and MFU, for a ~1.07B Llama and SmolLM2-135M x max_length 2048 and 1024 x packed and padded x full
fine-tuning and LoRA. BENCHMARKS.md ("GPU") gives the matched settings, the FLOP count, the results, and the
steps to run it on a CUDA machine without network access (wheels brought along).

    python benchmarks/gpu.py --smoke       # anywhere, CPU too: a tiny model, a few steps, every code path
    python benchmarks/gpu.py --prepare     # on a machine with the datasets: fill .gpu-bench/ (tokenizer, data)
    python benchmarks/gpu.py --preflight   # on the GPU machine: what imports, with versions; exits 1 if not ready
    python benchmarks/gpu.py               # on the GPU machine: the comparison, under 8 minutes on one H200

Both models are randomly initialized from a config, with SmolLM2's tokenizer: throughput and memory do not depend on
weight values, and the GPU machine then needs only the small files of `--prepare`, not the weights. Data: the 547
real multi-turn chats of chat_oasst_en.jsonl. Every arm runs in this process, tunesmith and TRL alternating who
goes first; `--budget-s` skips the arms left when time runs out, and the report names them. Prints a table, then
one JSON line last (also written to the file `--json-out` names).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from gpu_arms import SEED, Arm, Bench, Settings, run_arm, synchronize, tokenizer_of

ROOT = Path(__file__).resolve().parents[1]
PREPARED = ROOT / ".gpu-bench"
"""Git-ignored; filled by --prepare, copied to the GPU machine with the repository."""
TOKENIZER_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                   "special_tokens_map.json", "chat_template.jinja")
DATA_FILE = "chat_oasst_en.jsonl"
LLAMA_1B = {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "num_attention_heads": 32,
            "num_key_value_heads": 8, "max_position_embeddings": 4096, "tie_word_embeddings": True}
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "num_key_value_heads": 2, "max_position_embeddings": 1024, "tie_word_embeddings": True}
# Padded batches of 16 rows: the longest (16 x 2,048 tokens, padding included) keeps the 1B model's activations
# without checkpointing near 50 GB (estimated at ~1.6 MB a token in bf16, not measured), TRL's full logits beside.
FULL = Settings(models=("llama-1b", "smollm2-135m"), max_lengths=(2048, 1024), packed_tokens=16384, padded_rows=16,
                warmup=3, windows=3, min_window_steps=4, dtype="auto", rows=None)
SMOKE = Settings(models=("tiny",), max_lengths=(128,), packed_tokens=512, padded_rows=4, warmup=1, windows=2,
                 min_window_steps=2, dtype="bfloat16", rows=32)
DENSE_BF16_PEAK = {"H100": 989.4e12, "H200": 989.4e12}
"""FLOP/s by a part of the device's name: NVIDIA's SXM datasheet, dense (no sparsity)."""
TARGETS = {"tokens_per_s_ratio": 1.5, "peak_memory_ratio": 0.7, "mfu_spec": 0.40}
"""Issue 10's targets for the 1B model at max_length 2048, full and LoRA."""
REQUIRED = ("torch", "transformers", "peft", "accelerate", "trl", "datasets", "pydantic", "zstandard", "yaml",
            "tunesmith.train")
OPTIONAL = ("flash_attn", "liger_kernel", "triton", "bitsandbytes")


# ---- before the run: what travels, and what imports there --------------------------------------------------------


def prepare() -> None:
    """Fill `.gpu-bench/`: SmolLM2's config and tokenizer (no weights), and the data file."""
    from tunesmith.models import resolve_model

    source = resolve_model("default")
    (PREPARED / "smollm2").mkdir(parents=True, exist_ok=True)
    (PREPARED / "data").mkdir(exist_ok=True)
    for name in TOKENIZER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, PREPARED / "smollm2" / name)
    shutil.copy2(ROOT.parent / "shared" / "data" / DATA_FILE, PREPARED / "data" / DATA_FILE)
    size = sum(path.stat().st_size for path in PREPARED.rglob("*") if path.is_file())
    print(f"{PREPARED}: {size / 2**20:.1f} MiB; bring it to the GPU machine with the wheels (BENCHMARKS.md, GPU)")


def preflight(smoke: bool) -> dict:
    """Versions of what imports (or why not), the GPU, and whether the files of --prepare are there."""
    packages = {}
    for name in REQUIRED + OPTIONAL:
        try:
            module = importlib.import_module(name)
            packages[name] = str(getattr(module, "__version__", "imports"))
        except Exception as exc:  # any failure to import is what this report is for
            packages[name] = f"does not import: {type(exc).__name__}: {exc}"[:300]
    import torch

    gpu = None
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        gpu = {"name": props.name, "capability": f"{props.major}.{props.minor}", "cuda": torch.version.cuda,
               "memory_gib": round(props.total_memory / 2**30, 1), "bf16": torch.cuda.is_bf16_supported()}
    files = {str(path.relative_to(ROOT)): path.is_file()
             for path in (PREPARED / "smollm2" / "tokenizer.json", PREPARED / "data" / DATA_FILE)}
    missing = [name for name in REQUIRED if packages[name].startswith("does not import")]
    if not smoke:
        missing += ["a CUDA GPU"] * (gpu is None) + [f"{name} (run --prepare here)" for name, ok in files.items()
                                                     if not ok]
    return {"packages": packages, "gpu": gpu, "prepared_files": files, "missing": missing, "ready": not missing}


# ---- models, data, the matmul ceiling -----------------------------------------------------------------------------


def build_model(name: str, tokenizer_folder: Path, out: Path, device, dtype) -> Path:
    """A randomly initialized model saved as a safetensors folder with SmolLM2's tokenizer (tunesmith loads folders)."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_folder)
    if name == "smollm2-135m":
        config = LlamaConfig.from_pretrained(tokenizer_folder)
    else:
        base = AutoConfig.from_pretrained(tokenizer_folder)
        special = {key: getattr(base, key, None) for key in ("bos_token_id", "eos_token_id", "pad_token_id")}
        config = LlamaConfig(vocab_size=len(tokenizer), **(LLAMA_1B if name == "llama-1b" else TINY), **special)
    torch.manual_seed(SEED)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    model.save_pretrained(out / name)
    tokenizer.save_pretrained(out / name)
    return out / name


def load_examples(data: dict):
    from tunesmith.config import validate_config
    from tunesmith.data import load_splits

    return load_splits(validate_config({"data": data}).data).train


def tokenized_rows(examples, folder: Path, max_length: int):
    """The rows both tools train on: tunesmith's tokenization, rows without a supervised token dropped."""
    from tunesmith.data.cache import keep_supervised
    from tunesmith.data.tokenize import tokenize_examples

    return keep_supervised(tokenize_examples(examples, tokenizer_of(folder), max_length)[0])


def matmul_flops(device, size: int, dtype) -> float:
    """Median rate of one size^3 matmul on random data, after warm-up (zeros would run faster than real data)."""
    import torch

    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    times = []
    for repeat in range(13):
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        if repeat >= 3:
            times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times)


# ---- the run ------------------------------------------------------------------------------------------------------


def plan(settings: Settings, liger: bool) -> list[Arm]:
    """The targets' arms first (largest model, longest length), each tunesmith/TRL pair adjacent with the first to
    run alternating; the Liger arms (tunesmith only) after the pairs of the largest model at its longest length."""
    arms = []
    for index, (model, max_length, method, layout) in enumerate(
            (m, n, method, layout) for m in settings.models for n in settings.max_lengths
            for method in ("full", "lora") for layout in ("packed", "padded")):
        pair = [Arm(model, max_length, layout, method, tool) for tool in ("tunesmith", "trl")]
        arms += pair if index % 2 == 0 else pair[::-1]
        if liger and index == 3:
            arms += [Arm(model, max_length, "packed", each, "tunesmith+liger") for each in ("full", "lora")]
    return arms


def comparisons(results: list[dict]) -> list[dict]:
    """tunesmith (and tunesmith+liger) against TRL in the same arm; the targets where they apply."""
    found = {(r["model"], r["max_length"], r["layout"], r["method"], r["tool"]): r for r in results}
    pairs = []
    for (model, max_length, layout, method, tool), ours in found.items():
        theirs = found.get((model, max_length, layout, method, "trl"))
        if tool == "trl" or theirs is None or "tokens_per_s" not in ours or "tokens_per_s" not in theirs:
            continue
        memory = ours["peak_memory_gib"] / theirs["peak_memory_gib"] if "peak_memory_gib" in ours else None
        entry = {"model": model, "max_length": max_length, "layout": layout, "method": method, "tool": tool,
                 "tokens_per_s_ratio": ours["tokens_per_s"] / theirs["tokens_per_s"], "peak_memory_ratio": memory,
                 "mfu_spec": ours["mfu_spec"], "mfu_matmul": ours["mfu_matmul"]}
        if model == "llama-1b" and max_length == 2048:
            entry["targets_met"] = {
                "tokens_per_s_ratio": entry["tokens_per_s_ratio"] >= TARGETS["tokens_per_s_ratio"],
                "peak_memory_ratio": memory is not None and memory <= TARGETS["peak_memory_ratio"],
                "mfu_spec": entry["mfu_spec"] is not None and entry["mfu_spec"] >= TARGETS["mfu_spec"]}
        pairs.append(entry)
    return pairs


def print_table(results: list[dict]) -> None:
    print(f"{'model':13} {'len':>4} {'layout':6} {'method':6} {'tool':15} {'tokens/s':>9} {'peak GiB':>8} "
          f"{'MFU spec':>8} {'MFU mm':>7}  attention")
    for r in results:
        arm = f"{r['model']:13} {r['max_length']:>4} {r['layout']:6} {r['method']:6} {r['tool']:15}"
        if "tokens_per_s" not in r:
            print(f"{arm} {r.get('skipped') or r.get('error')}")
            continue
        memory = f"{r['peak_memory_gib']:.2f}" if "peak_memory_gib" in r else "-"
        spec = f"{r['mfu_spec']:.1%}" if r["mfu_spec"] is not None else "-"
        print(f"{arm} {r['tokens_per_s']:>9.0f} {memory:>8} {spec:>8} {r['mfu_matmul']:>7.1%}  {r['attention']}")


def set_up_bench(settings: Settings, smoke: bool) -> Bench:
    """Save the models, read and tokenize the data, measure the matmul rate."""
    import torch
    from transformers import AutoConfig

    from tunesmith.models import pick_dtype, resolve_model

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = pick_dtype(settings.dtype, device)
    work = Path(tempfile.mkdtemp(prefix="tunesmith-gpu-bench-"))
    os.environ["TUNESMITH_CACHE"] = str(work / "cache")  # tunesmith's tokenized rows, and nothing else, land here
    if smoke:
        tokenizer_folder = resolve_model("default")
        data = {"path": str(ROOT / "examples" / "sms_spam" / "train.jsonl"), "format": "classification",
                "columns": {"label": "label_text"}, "system_prompt": "Classify each SMS message as ham or spam.",
                "instruction": "", "max_train_rows": settings.rows}
    else:
        tokenizer_folder = PREPARED / "smollm2"
        data = {"path": str(PREPARED / "data" / DATA_FILE), "format": "messages"}
    data["split"] = {"validation": 0.0, "test": 0.0, "seed": SEED}
    folders = {name: build_model(name, tokenizer_folder, work / "models", device, dtype) for name in settings.models}
    examples = load_examples({**data, "max_length": max(settings.max_lengths)})
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return Bench(
        settings=settings, device=device, dtype=dtype, work=work, folders=folders, data=data, examples=examples,
        configs={model: AutoConfig.from_pretrained(folder) for model, folder in folders.items()},
        rows={n: tokenized_rows(examples, folders[settings.models[0]], n) for n in settings.max_lengths},
        matmul_flops=matmul_flops(device, 8192 if device.type == "cuda" else 512, dtype),
        peak_flops=next((peak for part, peak in DENSE_BF16_PEAK.items() if part in name), None),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prepare", action="store_true", help="fill .gpu-bench/ here, for the GPU machine")
    parser.add_argument("--preflight", action="store_true", help="report what imports; exit 1 if not ready")
    parser.add_argument("--smoke", action="store_true", help="tiny model, few steps, CPU allowed, no .gpu-bench/")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="skip the arms left after this many seconds (default 400; none with --smoke)")
    parser.add_argument("--no-liger", action="store_true", help="no tunesmith+liger arms")
    parser.add_argument("--json-out", metavar="FILE", help="also write the JSON line to FILE")
    args = parser.parse_args()
    if args.prepare:
        return prepare()
    started = time.perf_counter()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    checked = preflight(args.smoke)
    if args.preflight or not checked["ready"]:
        print(json.dumps(checked, indent=1))
        if not checked["ready"]:
            sys.exit("not ready: missing " + ", ".join(checked["missing"]))
        return
    from transformers.utils import logging as transformers_logging

    from tunesmith.models.kernels import import_problem

    transformers_logging.disable_progress_bar()
    settings = SMOKE if args.smoke else FULL
    budget = args.budget_s or (math.inf if args.smoke else 400.0)
    bench = set_up_bench(settings, args.smoke)
    liger = not args.no_liger and bench.device.type == "cuda" and import_problem("liger_kernel.transformers") is None
    results = []
    for arm in plan(settings, liger):
        if time.perf_counter() - started > budget:
            results.append({**asdict(arm), "skipped": f"time budget of {budget:.0f} s spent"})
            continue
        results.append(run_arm(arm, bench))
        print(json.dumps(results[-1])[:400], file=sys.stderr, flush=True)
    shutil.rmtree(bench.work, ignore_errors=True)
    report = {
        "benchmark": "gpu", "smoke": args.smoke, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "device": str(checked["gpu"]["name"] if checked["gpu"] else "cpu"), "preflight": checked,
        "settings": asdict(settings), "data_rows": len(bench.examples), "dense_bf16_peak_flops": bench.peak_flops,
        "matmul_flops_measured": bench.matmul_flops, "targets": TARGETS, "arms": results,
        "comparisons": comparisons(results), "elapsed_s": round(time.perf_counter() - started, 1),
    }
    print_table(results)
    line = json.dumps(report)
    if args.json_out:
        Path(args.json_out).write_text(line + "\n", encoding="utf-8")
    print(line)


if __name__ == "__main__":
    main()
