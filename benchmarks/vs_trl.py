"""tunesmith vs TRL's SFTTrainer: the same model, data, LoRA, optimizer, schedule, max_length, batch and loss
masking; each arm in a fresh subprocess, arms alternating, medians over repeats.

    python benchmarks/vs_trl.py [--quick] [--json] [--repeats 3] [--steps 20] [--trl-mode fastest]

Per arm and dataset: real (non-padding) tokens/s after warm-up, peak RSS, padding fraction, step-1 loss and
the loss after N steps. Then the ratios (tunesmith / TRL), the step-1 loss of both on the same batch with the
same weights, and achieved GFLOP/s as a fraction of this machine's measured fp32 matmul GFLOP/s.
TRL runs in both of its correct fp32 CPU batching modes and tunesmith is compared with the faster one per
dataset: padded batches grouped by length (`train_sampling_strategy="group_by_length"`), and padding-free
(`padding_free=True`: each batch's rows flattened into one sequence with per-row position ids, which
transformers >= 4.56 turns into a block-diagonal SDPA mask, so rows never see each other). No gradient
checkpointing, no bf16. Both arms train on the whole dataset file and run the same number of steps.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
LORA = {"r": 16, "alpha": 32, "dropout": 0.0,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}
DATASETS = {
    # name: (file, tunesmith data config, batch size)
    "sms_spam": (SHARED / "sms_spam_train.jsonl", {"format": "classification", "columns": {"label": "label_text"},
                                                   "system_prompt": "Classify each SMS message as ham or spam.",
                                                   "instruction": ""}, 8),
    "alpaca_2k": (SHARED / "alpaca_2k.jsonl", {"format": "alpaca"}, 8),
}
WARMUP_STEPS = 2
LEARNING_RATE = 2e-4
SEED = 0


def arm_config(dataset: str, steps: int, max_length: int, batch: int, rows: int | None, out: Path) -> dict:
    path, data, _ = DATASETS[dataset]
    return {
        "model": {"name": "default"},
        "data": {"path": str(path), "split": {"validation": 0.0, "test": 0.0, "seed": SEED}, "max_length": max_length,
                 "max_train_rows": rows, **data},
        "method": "lora", "lora": LORA,
        "train": {"learning_rate": LEARNING_RATE, "max_steps": steps, "batch_size": batch, "warmup_ratio": 0.0,
                  "scheduler": "constant", "max_grad_norm": 1.0, "seed": SEED, "eval_every": 10**6,
                  "save_every": 10**6, "group_by_length": True, "threads": os.cpu_count()},
        "output": {"dir": str(out)},
    }


def load_examples(config: dict):
    from tunesmith.config import validate_config
    from tunesmith.data import load_splits

    return load_splits(validate_config(config).data).train


def run_tunesmith(config: dict, out: Path) -> dict:
    from tunesmith.config import validate_config
    from tunesmith.data.example import Splits
    from tunesmith.data.run_inputs import RunInputs
    from tunesmith.run_dir import RunDir
    from tunesmith.train import train

    cfg = validate_config(config)
    run = RunDir(out / "tunesmith")
    splits = Splits(train=load_examples(config), validation=[], test=[], format=cfg.data.format)
    train(cfg, run, RunInputs(cfg, splits))
    steps = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    steps = [s for s in steps if "loss" in s]
    return {"losses": [s["loss"] for s in steps], "tokens": [s["tokens"] for s in steps],
            "padded": [s["padded_tokens"] for s in steps],
            "seconds": [s["tokens"] / s["tokens_per_s"] for s in steps]}


def trl_dataset(config: dict, mode: str):
    from datasets import Dataset

    if mode == "padded":
        rows = [{"prompt": list(e.prompt_messages), "completion": [e.messages[-1]]} for e in load_examples(config)]
        return Dataset.from_list(rows)
    # TRL's padding-free mode does not truncate (it refuses max_length), so it gets rows already tokenized and
    # truncated by the same rules: identical tokens and labels in both arms.
    from tunesmith.config import ModelConfig
    from tunesmith.data.tokenize import tokenize_examples
    from tunesmith.models import load_tokenizer

    rows, _ = tokenize_examples(load_examples(config), load_tokenizer(ModelConfig()), config["data"]["max_length"])
    return Dataset.from_list([{"input_ids": r.input_ids, "labels": r.labels} for r in rows])


def build_trl_trainer(config: dict, out: Path, steps: int, mode: str, callbacks=()):
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from tunesmith.models import resolve_model

    folder = resolve_model("default")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    t = config["train"]
    args = SFTConfig(
        output_dir=str(out / "trl"), max_steps=steps, per_device_train_batch_size=t["batch_size"],
        gradient_accumulation_steps=1, learning_rate=t["learning_rate"], lr_scheduler_type="constant",
        warmup_steps=0, max_grad_norm=t["max_grad_norm"], weight_decay=0.0, seed=SEED, data_seed=SEED,
        max_length=config["data"]["max_length"] if mode == "padded" else None, packing=False,
        padding_free=mode == "padding_free", completion_only_loss=True,
        train_sampling_strategy="group_by_length" if mode == "padded" else "random", gradient_checkpointing=False,
        bf16=False, fp16=False, use_cpu=True,
        logging_steps=1, save_strategy="no", eval_strategy="no", report_to=[], dataloader_num_workers=0,
        disable_tqdm=True,
    )
    peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                             target_modules=LORA["target_modules"], task_type="CAUSAL_LM")
    return SFTTrainer(model=model, args=args, train_dataset=trl_dataset(config, mode), processing_class=tokenizer,
                      peft_config=peft_config, callbacks=list(callbacks))


def run_trl(config: dict, out: Path, steps: int, mode: str) -> dict:
    from transformers import TrainerCallback

    record = {"losses": [], "tokens": [], "padded": [], "seconds": []}

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            record["seconds"].append(time.perf_counter() - self.started)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                record["losses"].append(logs["loss"])

    trainer = build_trl_trainer(config, out, steps, mode, [Timer()])
    collator = trainer.data_collator

    def counting_collator(features):
        batch = collator(features)
        real = batch["attention_mask"].sum() if "attention_mask" in batch else batch["input_ids"].numel()
        record["tokens"].append(int(real))
        record["padded"].append(int(batch["input_ids"].numel()))
        return batch

    trainer.data_collator = counting_collator
    trainer.train()
    return record


def same_batch_loss(config: dict, out: Path, mode: str) -> dict:
    """Step-1 loss of both on TRL's first batch with the same (freshly initialized, seeded) LoRA weights."""
    import torch

    from tunesmith.predict.loss import supervised_loss_sum

    torch.manual_seed(SEED)
    trainer = build_trl_trainer(config, out, steps=1, mode=mode)
    batch = next(iter(trainer.get_train_dataloader()))
    model = trainer.model
    model.train()
    with torch.no_grad():
        trl_loss = float(trainer.compute_loss(model, batch))
        loss_sum, count = supervised_loss_sum(model, batch)
    ours = float(loss_sum) / count
    return {"trl": trl_loss, "tunesmith": ours, "rel_diff": abs(ours - trl_loss) / abs(trl_loss)}


def child(args) -> None:
    config = json.loads(args.config)
    out = Path(args.out)
    if args.arm == "tunesmith":
        result = run_tunesmith(config, out)
    elif args.arm == "trl":
        result = run_trl(config, out, config["train"]["max_steps"], args.trl_mode)
    else:
        result = same_batch_loss(config, out, args.trl_mode)
    report_result(result)


def report_result(result: dict) -> None:
    """A child process's last act: its result, with the process's peak RSS, as the line `spawn_child` reads."""
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result))


def spawn(arm: str, config: dict, trl_mode: str) -> dict:
    return spawn_child(__file__, arm, ["--child", arm, "--trl-mode", trl_mode], config)


def spawn_child(script: str, arm: str, flags: list[str], config: dict) -> dict:
    """Run ``script`` with its child ``flags`` on ``config`` in a fresh Python process (a clean peak RSS, no state
    shared between arms); the result it reported (`report_result`)."""
    with tempfile.TemporaryDirectory() as out:
        proc = subprocess.run(
            [sys.executable, script, *flags, "--config", json.dumps(config), "--out", out],
            capture_output=True, text=True, env={**os.environ, "TRANSFORMERS_VERBOSITY": "error"},
        )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode or not lines:
        raise SystemExit(f"{arm} arm failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def summarize(run: dict) -> dict:
    timed = slice(WARMUP_STEPS, None)
    tokens, seconds = sum(run["tokens"][timed]), sum(run["seconds"][timed])
    return {
        "tokens_per_s": tokens / seconds, "peak_rss_mib": run["peak_rss_mib"],
        "padding_fraction": 1 - sum(run["tokens"]) / sum(run["padded"]),
        "step1_loss": run["losses"][0], "final_loss": run["losses"][-1], "steps": len(run["losses"]),
    }


def matmul_gflops() -> float:
    from tunesmith.models.loading import matmul_seconds

    return 2 * 2048**3 / matmul_seconds(size=2048, repeats=5) / 1e9


def mean_tokens(config: dict, max_length: int) -> float:
    from tunesmith.config import ModelConfig
    from tunesmith.data.tokenize import tokenize_examples
    from tunesmith.models import load_tokenizer

    rows, _ = tokenize_examples(load_examples(config), load_tokenizer(ModelConfig()), max_length)
    return statistics.mean(len(row.input_ids) for row in rows)


def lora_flops_per_token(mean_length: float) -> float:
    """4N per real token for LoRA (forward 2N + input gradients 2N; frozen weights get no weight gradient),
    N = SmolLM2-135M's matmul parameters without the embedding lookup, plus attention scores and values
    (forward 4·layers·length·width per token, twice that again backward)."""
    layers, width, ffn, kv = 30, 576, 1536, 192
    per_layer = width * width * 2 + width * kv * 2 + 3 * width * ffn
    n = layers * per_layer + 49152 * width  # + the LM head
    return 4 * n + 3 * 4 * layers * mean_length * width


# TRL's faster mode per dataset in the full run of 2026-11-24 (BENCHMARKS.md): `--quick` runs only that one, to
# stay under 10 minutes; the full run measures both modes every time and compares with the faster.
FASTEST_TRL_MODE = {"sms_spam": "padded", "alpaca_2k": "padded"}
TRL_MODES = ("padded", "padding_free")


def trl_modes(args, dataset: str) -> list[str]:
    if args.trl_mode != "fastest":
        return [args.trl_mode]
    return [FASTEST_TRL_MODE[dataset]] if args.quick else list(TRL_MODES)


def compare_on(name: str, config: dict, modes: list[str], repeats: int, gflops: float, max_length: int) -> dict:
    """Every arm ``repeats`` times in fresh subprocesses, rotating who goes first; ratios against TRL's faster mode."""
    arms = ["tunesmith", *(f"trl-{mode}" for mode in modes)]
    runs: dict[str, list] = {arm: [] for arm in arms}
    for repeat in range(repeats):
        order = arms[repeat % len(arms):] + arms[: repeat % len(arms)]
        for arm in order:
            kind, _, mode = arm.partition("-")
            runs[arm].append(summarize(spawn(kind, config, mode or modes[0])))
            print(f"{name} {arm} #{repeat + 1}: {runs[arm][-1]}", file=sys.stderr)
    medians = {arm: {key: statistics.median(r[key] for r in results) for key in results[0]}
               for arm, results in runs.items()}
    fastest = max(arms[1:], key=lambda arm: medians[arm]["tokens_per_s"])
    mean_length = mean_tokens(config, max_length)
    for arm in arms:
        achieved = lora_flops_per_token(mean_length) * medians[arm]["tokens_per_s"] / 1e9
        medians[arm]["achieved_gflops"] = achieved
        medians[arm]["fraction_of_matmul_peak"] = achieved / gflops
    return {
        "arms": medians, "runs": runs, "fastest_trl": fastest,
        "same_batch_step1_loss": spawn("loss", config, fastest.partition("-")[2]),
        "tokens_per_s_ratio": medians["tunesmith"]["tokens_per_s"] / medians[fastest]["tokens_per_s"],
        "peak_rss_ratio": medians["tunesmith"]["peak_rss_mib"] / medians[fastest]["peak_rss_mib"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer steps and rows (< 10 minutes on 2 cores)")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--datasets", default="sms_spam,alpaca_2k")
    parser.add_argument("--trl-mode", choices=["fastest", *TRL_MODES], default="fastest",
                        help="TRL's batching: padded and grouped by length, or padding-free (flattened rows with "
                             "per-row position ids; transformers builds the block-diagonal SDPA mask from them). "
                             "`fastest` (default) runs both and compares with the faster (with --quick: the mode "
                             "that was faster on that dataset in the full run)")
    parser.add_argument("--child", choices=["tunesmith", "trl", "loss"], help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        args.arm = args.child
        return child(args)

    steps = args.steps or (6 if args.quick else 20)
    max_length = 256 if args.quick else 512
    gflops = matmul_gflops()
    report: dict = {"machine": {"cpus": os.cpu_count(), "fp32_matmul_gflops": gflops}, "steps": steps,
                    "trl_mode": args.trl_mode, "warmup_steps": WARMUP_STEPS, "repeats": args.repeats,
                    "max_length": max_length, "datasets": {}}
    for name in args.datasets.split(","):
        batch = DATASETS[name][2] if not args.quick or name == "sms_spam" else 4
        config = arm_config(name, steps, max_length, batch, rows=None, out=Path("unused"))
        report["datasets"][name] = compare_on(name, config, trl_modes(args, name), args.repeats, gflops, max_length)
    names = list(report["datasets"])
    report["tokens_per_s_ratio"] = statistics.median(report["datasets"][n]["tokens_per_s_ratio"] for n in names)
    report["peak_rss_ratio"] = statistics.median(report["datasets"][n]["peak_rss_ratio"] for n in names)
    report["step1_loss_rel_diff"] = max(report["datasets"][n]["same_batch_step1_loss"]["rel_diff"] for n in names)
    for name in names:
        entry = report["datasets"][name]
        ours, theirs = entry["arms"]["tunesmith"], entry["arms"][entry["fastest_trl"]]
        print(f"{name}: tokens/s tunesmith {ours['tokens_per_s']:.0f} vs {entry['fastest_trl']} "
              f"{theirs['tokens_per_s']:.0f} (x{entry['tokens_per_s_ratio']:.2f}); peak RSS "
              f"{ours['peak_rss_mib']:.0f} vs {theirs['peak_rss_mib']:.0f} MiB (x{entry['peak_rss_ratio']:.2f}); "
              f"step-1 loss rel diff {entry['same_batch_step1_loss']['rel_diff']:.2e}")
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
