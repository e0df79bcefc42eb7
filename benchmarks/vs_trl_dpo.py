"""tunesmith's DPO vs TRL's DPOTrainer: the same model, pairs, LoRA, optimizer, schedule, max_length, batch, β and
loss; each arm in a fresh subprocess, arms alternating, medians over repeats.

    python benchmarks/vs_trl_dpo.py [--quick] [--json] [--repeats 3] [--steps 10] [--arms tunesmith,trl]

Arms: ``tunesmith`` (padded, grouped by length: its default), ``tunesmith-packed`` (``train.packing: true``: whole
pairs packed into sequences of up to twice max_length) and ``trl`` (DPOTrainer; TRL 1.16's ``padding_free`` is
disabled, so its batches are padded). Per arm: real (non-padding) tokens/s of the chosen and rejected sequences
over the steps after the warm-up steps, peak RSS of the subprocess, padding fraction, pairs per step, the step-1
loss (log 2 in every arm: the fresh adapter's B is zero, so the policy is its reference) and the loss after N steps.
Then the ratios (tunesmith / TRL) and achieved GFLOP/s as a fraction of this machine's measured fp32 matmul GFLOP/s.

Matched: SmolLM2-135M-Instruct (the default model's local folder for both), fp32, LoRA r 16 alpha 32 dropout 0 on
every attention and MLP projection, AdamW lr 1e-4 constant without warm-up and weight decay, gradient clipping at
1.0, 4 pairs a step, max_length 320 a sequence, β 0.1, the sigmoid loss, the reference policy the model with its
adapter disabled, computed every step (TRL: ``ref_model=None`` with a PEFT adapter, ``precompute_ref_log_probs=
False``), no gradient checkpointing, one thread per core, the 158 pairs of examples/alpaca_dpo/pairs_train_all.jsonl
rendered by the model's chat template (TRL's sequences keep the newline the template writes after the end-of-turn
token, one token more a sequence than tunesmith's; each arm's tokens/s counts its own real tokens).

Order: TRL reads the pairs sequentially (``train_sampling_strategy="sequential"``) in the order of tunesmith's
padded batches (seeded, length-grouped), so the two padded arms train on the same pairs at every step. The packed
arm's batch size counts packs: it gets the number of packs that holds about 4 pairs (its pairs per step are
reported), and is compared on tokens/s. A step's time is its forward and backward passes (policy and
reference) and the optimizer step; tunesmith's also includes collating the batch, TRL's does not (its Trainer
collates before the step begins).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

from vs_trl import (
    LORA,
    SEED,
    WARMUP_STEPS,
    load_examples,
    lora_flops_per_token,
    matmul_gflops,
    report_result,
    run_tunesmith,
    spawn_child,
    summarize,
)

ROOT = Path(__file__).resolve().parents[1]
PAIRS = ROOT / "examples" / "alpaca_dpo" / "pairs_train_all.jsonl"
PAIRS_PER_STEP = 4
MAX_LENGTH = 320
BETA = 0.1
LEARNING_RATE = 1e-4
ARMS = ("tunesmith", "tunesmith-packed", "trl")


def arm_config(steps: int, batch: int, packing: bool, out: Path) -> dict:
    return {
        "model": {"name": "default"},
        "data": {"path": str(PAIRS), "format": "preference", "max_length": MAX_LENGTH, "cache": False,
                 "split": {"validation": 0.0, "test": 0.0, "seed": SEED}},
        "method": "dpo", "lora": LORA, "preference": {"beta": BETA},
        "train": {"learning_rate": LEARNING_RATE, "max_steps": steps, "batch_size": batch, "warmup_ratio": 0.0,
                  "scheduler": "constant", "max_grad_norm": 1.0, "seed": SEED, "eval_every": 10**6,
                  "save_every": 10**6, "group_by_length": True, "packing": packing, "threads": os.cpu_count()},
        "output": {"dir": str(out)},
    }


def training_pairs(config: dict):
    """``(examples, the pairs tunesmith trains on, its batch plan)`` for ``config``, as `tunesmith.train` makes
    them."""
    from tunesmith.config import validate_config
    from tunesmith.data.example import Splits
    from tunesmith.models import load_tokenizer
    from tunesmith.train.recipe import batch_plan_of
    from tunesmith.train.rows import training_rows

    cfg = validate_config(config)
    examples = load_examples(config)
    splits = Splits(train=examples, validation=[], test=[], format=cfg.data.format)
    pairs = training_rows(cfg, splits, load_tokenizer(cfg.model))[0]
    return examples, pairs, batch_plan_of(cfg, pairs, pad_token_id=0)


def data_facts(steps: int) -> dict:
    """Pairs, mean sequence length, full padded batches of an epoch, and the packs that hold ~`PAIRS_PER_STEP`."""
    _, pairs, padded = training_pairs(arm_config(steps, PAIRS_PER_STEP, packing=False, out=Path("unused")))
    _, _, packed = training_pairs(arm_config(steps, 1, packing=True, out=Path("unused")))
    pairs_per_pack = len(pairs) / len(packed.epoch(0))
    lengths = [len(side.input_ids) for pair in pairs for side in (pair.chosen, pair.rejected)]
    return {"pairs": len(pairs), "mean_sequence_tokens": statistics.mean(lengths),
            "full_batches": sum(len(batch) == PAIRS_PER_STEP for batch in padded.epoch(0)),
            "pairs_per_pack": pairs_per_pack, "packs_per_step": max(1, round(PAIRS_PER_STEP / pairs_per_pack))}


# ---- the arms (each in its own subprocess) ----------------------------------------------------------------------


def run_tunesmith_dpo(config: dict, out: Path) -> dict:
    from tunesmith.run_dir import RunDir

    record = run_tunesmith(config, out)
    lines = [json.loads(line) for line in RunDir(out / "tunesmith").metrics.read_text().splitlines()]
    record["pairs"] = [line["pairs"] for line in lines if "loss" in line]
    return record


def trl_rows(config: dict) -> list[dict]:
    """The pairs as TRL's conversational rows, in the order of tunesmith's padded batches for ``config``."""
    examples, pairs, plan = training_pairs(config)
    by_location = {example.location: example for example in examples}
    ordered = [by_location[pairs[i].location] for batch in plan.epoch(0) for pack in batch for i in pack]
    return [{"prompt": list(e.prompt_messages), "chosen": [e.messages[-1]], "rejected": [e.rejected]}
            for e in ordered]


def build_trl_trainer(config: dict, out: Path, callbacks=()):
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from tunesmith.models import resolve_model

    t = config["train"]
    torch.set_num_threads(t["threads"])  # tunesmith's train.threads
    folder = resolve_model("default")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    args = DPOConfig(
        output_dir=str(out / "trl"), max_steps=t["max_steps"], per_device_train_batch_size=t["batch_size"],
        gradient_accumulation_steps=1, learning_rate=t["learning_rate"], lr_scheduler_type="constant",
        warmup_steps=0, max_grad_norm=t["max_grad_norm"], weight_decay=0.0, seed=SEED, data_seed=SEED,
        max_length=MAX_LENGTH, beta=BETA, loss_type=["sigmoid"], precompute_ref_log_probs=False,
        padding_free=False, train_sampling_strategy="sequential", gradient_checkpointing=False, bf16=False,
        fp16=False, use_cpu=True, logging_steps=1, save_strategy="no", eval_strategy="no", report_to=[],
        dataloader_num_workers=0, disable_tqdm=True,
    )
    peft_config = LoraConfig(r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"],
                             target_modules=LORA["target_modules"], task_type="CAUSAL_LM")
    return DPOTrainer(model=model, ref_model=None, args=args, train_dataset=Dataset.from_list(trl_rows(config)),
                      processing_class=tokenizer, peft_config=peft_config, callbacks=list(callbacks))


def run_trl(config: dict, out: Path) -> dict:
    from transformers import TrainerCallback

    record: dict[str, list] = {"losses": [], "tokens": [], "padded": [], "seconds": [], "pairs": []}

    class Timer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            self.started = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            record["seconds"].append(time.perf_counter() - self.started)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                record["losses"].append(logs["loss"])

    trainer = build_trl_trainer(config, out, [Timer()])
    collator = trainer.data_collator

    def counting_collator(features):
        batch = collator(features)
        record["tokens"].append(int(batch["attention_mask"].sum()))
        record["padded"].append(int(batch["input_ids"].numel()))
        record["pairs"].append(len(features))
        return batch

    trainer.data_collator = counting_collator
    trainer.train()
    # The dataloader collates one batch ahead (to know when the epoch ends): the last one collated never trains.
    for key in ("tokens", "padded", "pairs"):
        del record[key][len(record["seconds"]):]
    return record


def child(args) -> None:
    config = json.loads(args.config)
    out = Path(args.out)
    report_result(run_trl(config, out) if args.child == "trl" else run_tunesmith_dpo(config, out))


def spawn(arm: str, config: dict) -> dict:
    return spawn_child(__file__, arm, ["--child", "trl" if arm == "trl" else "tunesmith"], config)


# ---- the comparison ---------------------------------------------------------------------------------------------


def dpo_flops_per_token(mean_length: float) -> float:
    """`lora_flops_per_token` (the policy's forward and backward: 4N, plus attention) and the reference policy's
    forward (2N, plus a third of that attention term, which counts forward once and backward twice)."""
    weights = lora_flops_per_token(0)
    attention = lora_flops_per_token(mean_length) - weights
    return weights * 1.5 + attention * 4 / 3


def compare(arms: list[str], configs: dict[str, dict], repeats: int, gflops: float, mean_length: float) -> dict:
    """Every arm ``repeats`` times in fresh subprocesses, rotating who goes first; medians per arm."""
    runs: dict[str, list] = {arm: [] for arm in arms}
    for repeat in range(repeats):
        for arm in arms[repeat % len(arms):] + arms[: repeat % len(arms)]:
            started = time.perf_counter()
            raw = spawn(arm, configs[arm])
            runs[arm].append({**summarize(raw), "pairs_per_step": statistics.mean(raw["pairs"]),
                              "wall_s": time.perf_counter() - started, "losses": raw["losses"]})
            shown = {key: value for key, value in runs[arm][-1].items() if key != "losses"}
            print(f"{arm} #{repeat + 1}: {shown}", file=sys.stderr)
    medians = {arm: {key: statistics.median(r[key] for r in results) for key in results[0] if key != "losses"}
               for arm, results in runs.items()}
    for arm in arms:
        achieved = dpo_flops_per_token(mean_length) * medians[arm]["tokens_per_s"] / 1e9
        medians[arm]["achieved_gflops"] = achieved
        medians[arm]["fraction_of_matmul_peak"] = achieved / gflops
    return {"arms": medians, "runs": runs}


def ratios(medians: dict) -> dict:
    if "trl" not in medians:
        return {}
    trl = medians["trl"]
    return {f"{arm}_vs_trl": {"tokens_per_s": m["tokens_per_s"] / trl["tokens_per_s"],
                              "peak_rss": m["peak_rss_mib"] / trl["peak_rss_mib"]}
            for arm, m in medians.items() if arm != "trl"}


def step1_check(runs: dict) -> dict:
    """Every run's step-1 loss against log 2 (the fresh adapter leaves the policy equal to its reference)."""
    worst = {arm: max(abs(r["step1_loss"] - math.log(2)) for r in results) for arm, results in runs.items()}
    return {"expected": math.log(2), "max_abs_diff": worst, "all_log2": all(d < 1e-4 for d in worst.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 steps, 1 repeat: a smoke run, not figures")
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--repeats", type=int, default=None, help="runs of each arm (default 3; --quick 1)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"timed steps after the {WARMUP_STEPS} warm-up steps (default 10; --quick 2)")
    parser.add_argument("--arms", default=",".join(ARMS), help=f"a comma-separated subset of {', '.join(ARMS)}")
    parser.add_argument("--child", choices=["tunesmith", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)

    arms = args.arms.split(",")
    unknown = [arm for arm in arms if arm not in ARMS]
    if unknown:
        parser.error(f"unknown arm {unknown[0]!r}: choose from {', '.join(ARMS)}")
    steps = WARMUP_STEPS + (args.steps or (2 if args.quick else 10))
    repeats = args.repeats or (1 if args.quick else 3)
    facts = data_facts(steps)
    if steps > facts["full_batches"]:
        parser.error(f"--steps: at most {facts['full_batches'] - WARMUP_STEPS} (one epoch of full batches, so "
                     "that TRL's sequential order stays tunesmith's)")
    configs = {"tunesmith": arm_config(steps, PAIRS_PER_STEP, packing=False, out=Path("unused")),
               "tunesmith-packed": arm_config(steps, facts["packs_per_step"], packing=True, out=Path("unused")),
               "trl": arm_config(steps, PAIRS_PER_STEP, packing=False, out=Path("unused"))}
    gflops = matmul_gflops()
    result = compare(arms, configs, repeats, gflops, facts["mean_sequence_tokens"])
    report = {"machine": {"cpus": os.cpu_count(), "fp32_matmul_gflops": gflops}, "steps": steps,
              "warmup_steps": WARMUP_STEPS, "repeats": repeats, "max_length": MAX_LENGTH,
              "pairs_per_step": PAIRS_PER_STEP, "data": facts, **result, "ratios": ratios(result["arms"]),
              "step1_loss": step1_check(result["runs"])}
    print(f"{facts['pairs']} pairs, {facts['mean_sequence_tokens']:.0f} tokens a sequence on average; packed: "
          f"{facts['pairs_per_pack']:.2f} pairs a pack, {facts['packs_per_step']} packs a step; fp32 matmul "
          f"{gflops:.0f} GFLOP/s; {steps} steps ({WARMUP_STEPS} warm-up), {repeats} repeat(s), medians")
    for arm, m in report["arms"].items():
        print(f"{arm:17} {m['tokens_per_s']:7.0f} tokens/s  peak RSS {m['peak_rss_mib']:5.0f} MiB  padding "
              f"{m['padding_fraction']:.1%}  {m['pairs_per_step']:.1f} pairs/step  step-1 loss "
              f"{m['step1_loss']:.4f}  loss after {m['steps']:.0f} steps {m['final_loss']:.4f}  "
              f"{m['achieved_gflops']:.1f} GFLOP/s ({m['fraction_of_matmul_peak']:.0%} of matmul)")
    for name, ratio in report["ratios"].items():
        print(f"{name}: tokens/s x{ratio['tokens_per_s']:.2f}, peak RSS x{ratio['peak_rss']:.2f}")
    check = report["step1_loss"]
    print(f"step-1 loss is log 2 = {check['expected']:.4f} in every run: {check['all_log2']} (largest difference "
          + ", ".join(f"{arm} {diff:.1e}" for arm, diff in check["max_abs_diff"].items()) + ")")
    if args.json:
        print(json.dumps(report))


if __name__ == "__main__":
    main()
