"""One arm of `benchmarks/gpu.py`: a tool (tunesmith, TRL's SFTTrainer, tunesmith with Liger) training one model at
one max_length, packed or padded, fully or with LoRA, timed step by step; and the FLOP count its MFU uses.

Matched settings: both tools train on the same tokenized rows and labels (tunesmith's tokenization; TRL gets the
rows tokenized), with the same max_length and batch, LoRA settings, bf16 weights (TRL also gets bf16=True), no
gradient checkpointing, AdamW at a constant learning rate, clipping at 1.0, and the same attention implementation
(`model.attention: auto`). TRL's optimizer is its default, recorded in each arm's result.
"""

from __future__ import annotations

import gc
import math
import shutil
import statistics
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

LORA = {"r": 16, "alpha": 32, "dropout": 0.0,
        "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}
LEARNING_RATE = {"full": 2e-5, "lora": 2e-4}
SEED = 0


@dataclass(frozen=True)
class Settings:
    models: tuple[str, ...]
    max_lengths: tuple[int, ...]
    packed_tokens: int
    """Tokens per packed batch: batch = packed_tokens // max_length sequences."""
    padded_rows: int
    """Rows per padded batch (grouped by length in both tools)."""
    warmup: int
    windows: int
    min_window_steps: int
    dtype: str
    """`model.dtype` of both tools."""
    rows: int | None
    """Use at most this many data rows."""


@dataclass(frozen=True)
class Arm:
    model: str
    max_length: int
    layout: str
    """`packed` or `padded`."""
    method: str
    """`full` or `lora`."""
    tool: str
    """`tunesmith`, `trl` or `tunesmith+liger`."""


@dataclass
class Bench:
    """What every arm shares: the device, the saved models, the data and the two FLOP/s ceilings."""

    settings: Settings
    device: object
    dtype: object
    work: Path
    folders: dict
    """Model name -> saved folder."""
    configs: dict
    """Model name -> its transformers config."""
    data: dict
    """tunesmith's `data` section without max_length."""
    examples: list
    rows: dict
    """max_length -> the tokenized rows both tools train on."""
    matmul_flops: float
    peak_flops: float | None


def synchronize(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def tokenizer_of(folder: Path):
    """The tokenizer both tools use: tunesmith's loading (the model's chat template, EOS as padding if none)."""
    from tunesmith.config import ModelConfig
    from tunesmith.models import load_tokenizer

    return load_tokenizer(ModelConfig(name=str(folder)))


def flops_per_token(config, method: str, mean_row_length: float) -> float:
    """Model FLOPs per real token. N: the matmul weights (every layer's attention and MLP projections and the LM
    head; not the embedding lookup); L layers; d the hidden size; s each token's own row length averaged over the
    tokens (sum len^2 / sum len: packed or padded, a token attends within its row).

    full fine-tuning: 6N + 12·L·d·s (forward 2N, backward 4N; attention's scores and values 4·L·d·s forward and
    twice that backward, not halved for causality, as in PaLM's appendix B). LoRA: 4N + 6·N_adapter + 12·L·d·s
    (frozen weights get input gradients only)."""
    d, ffn, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    head = getattr(config, "head_dim", None) or d // config.num_attention_heads
    q, kv = config.num_attention_heads * head, config.num_key_value_heads * head
    shapes = {"q_proj": (d, q), "k_proj": (d, kv), "v_proj": (d, kv), "o_proj": (q, d), "gate_proj": (d, ffn),
              "up_proj": (d, ffn), "down_proj": (ffn, d)}
    weights = layers * sum(i * o for i, o in shapes.values()) + config.vocab_size * d
    attention = 12 * layers * d * mean_row_length
    if method == "full":
        return 6 * weights + attention
    adapter = layers * sum(LORA["r"] * (shapes[name][0] + shapes[name][1]) for name in LORA["target_modules"])
    return 4 * weights + 6 * adapter + attention


def batch_size(arm: Arm, settings: Settings) -> int:
    return settings.packed_tokens // arm.max_length if arm.layout == "packed" else settings.padded_rows


def step_count(arm: Arm, settings: Settings, rows: int) -> int:
    """Warm-up plus windows. A padded arm covers an epoch, so both tools meet the longest batch (TRL's
    length-grouped sampler puts it first) and their peak memories compare."""
    per_window = settings.min_window_steps
    if arm.layout == "padded":
        epoch = math.ceil(rows / settings.padded_rows)
        per_window = max(per_window, math.ceil((epoch - settings.warmup) / settings.windows))
    return settings.warmup + settings.windows * per_window


def run_tunesmith(arm: Arm, bench: Bench, steps: int, work: Path) -> dict:
    """tunesmith's own set-up and optimizer step (`tunesmith.train.recipe`), without validation or checkpoints."""
    from tunesmith.config import validate_config
    from tunesmith.data.example import Splits
    from tunesmith.data.run_inputs import RunInputs
    from tunesmith.predict.loss import decoder_of
    from tunesmith.run_dir import RunDir
    from tunesmith.train.recipe import optimizer_step, set_up
    from tunesmith.train.state import TrainState

    config = validate_config({
        "model": {"name": str(bench.folders[arm.model]), "dtype": bench.settings.dtype, "attention": "auto"},
        "data": {**bench.data, "max_length": arm.max_length}, "method": arm.method, "lora": LORA,
        "train": {"learning_rate": LEARNING_RATE[arm.method], "max_steps": steps,
                  "batch_size": batch_size(arm, bench.settings), "warmup_ratio": 0.0, "scheduler": "constant",
                  "max_grad_norm": 1.0, "seed": SEED, "eval_every": 10**6, "save_every": 10**6,
                  "packing": arm.layout == "packed", "group_by_length": True, "liger": arm.tool == "tunesmith+liger"},
        "output": {"dir": str(work)},
    })
    splits = Splits(train=bench.examples, validation=[], test=[], format=config.data.format)
    training = set_up(config, RunDir(work / "tunesmith"), RunInputs(config, splits))
    record = {"ends": [], "tokens": [], "losses": [], "mixed_precision": training.accelerator.mixed_precision,
              "attention": decoder_of(training.model).config._attn_implementation}
    state = TrainState()
    synchronize(bench.device)
    record["ends"].append(time.perf_counter())
    for _ in range(steps):
        result = optimizer_step(training, training.plan.take(state, 1), state)
        state.step += 1
        synchronize(bench.device)
        record["ends"].append(time.perf_counter())
        record["tokens"].append(result.real_tokens)
        record["losses"].append(result.loss)
    return record


def run_trl(arm: Arm, bench: Bench, steps: int, work: Path) -> dict:
    """TRL's SFTTrainer.train(), timed by a callback at every step end (synchronized: steps are asynchronous)."""
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from tunesmith.models.kernels import attention_implementation

    device, folder = bench.device, bench.folders[arm.model]
    attention = attention_implementation("auto", device, bench.dtype)  # what tunesmith's `auto` picks
    record = {"ends": [], "tokens": [], "losses": [], "attention": attention}

    class StepClock(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            synchronize(device)
            record["ends"].append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            synchronize(device)
            record["ends"].append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                record["losses"].append(logs["loss"])

    packed = arm.layout == "packed"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=bench.dtype, attn_implementation=record["attention"])
    args = SFTConfig(
        output_dir=str(work / "trl"), max_steps=steps, per_device_train_batch_size=batch_size(arm, bench.settings),
        gradient_accumulation_steps=1, learning_rate=LEARNING_RATE[arm.method], lr_scheduler_type="constant",
        warmup_steps=0, max_grad_norm=1.0, weight_decay=0.0, seed=SEED, data_seed=SEED, max_length=arm.max_length,
        packing=packed, padding_free=packed, train_sampling_strategy="random" if packed else "group_by_length",
        gradient_checkpointing=False, bf16=str(bench.dtype) == "torch.bfloat16", fp16=False,
        use_cpu=device.type == "cpu", logging_steps=1, save_strategy="no", eval_strategy="no", report_to=[],
        dataloader_num_workers=0, disable_tqdm=True,
    )
    peft_config = None if arm.method == "full" else LoraConfig(
        r=LORA["r"], lora_alpha=LORA["alpha"], lora_dropout=LORA["dropout"], target_modules=LORA["target_modules"],
        task_type="CAUSAL_LM")
    rows = bench.rows[arm.max_length]
    dataset = Dataset.from_list([{"input_ids": row.input_ids, "labels": row.labels} for row in rows])
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer_of(folder),
                         peft_config=peft_config, callbacks=[StepClock()])
    trainer.remove_callback(PrinterCallback)  # it prints every step's log line to stdout
    collator = trainer.data_collator

    def counting_collator(features):
        batch = collator(features)
        mask = batch.get("attention_mask")  # padding-free batches have none: every token is real
        record["tokens"].append(int(mask.sum()) if mask is not None else batch["input_ids"].numel())
        return batch

    trainer.data_collator = counting_collator
    record["optimizer"] = str(args.optim)
    record["mixed_precision"] = trainer.accelerator.mixed_precision
    trainer.train()
    record["tokens"] = record["tokens"][:steps]  # the loader may collate one batch ahead
    return record


def summarize(record: dict, settings: Settings) -> dict:
    """Tokens/s: the median over windows of real tokens / wall time, after the warm-up steps."""
    ends, tokens = record["ends"], record["tokens"]
    per_window = (len(tokens) - settings.warmup) // settings.windows
    rates = []
    for window in range(settings.windows):
        first = settings.warmup + window * per_window
        last = first + per_window
        rates.append(sum(tokens[first:last]) / (ends[last] - ends[first]))
    losses = record["losses"]
    return {"tokens_per_s": statistics.median(rates), "window_tokens_per_s": rates, "steps": len(tokens),
            "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
            **{key: record[key] for key in ("attention", "mixed_precision", "optimizer") if key in record}}


def fresh_state(device) -> None:
    """Between arms: free the last arm's memory, reset the peak counter and accelerate's process-wide state (TRL
    asks for bf16 autocast, tunesmith for none, and accelerate refuses a second setting in one process)."""
    import torch
    from accelerate.state import AcceleratorState, GradientState

    gc.collect()
    AcceleratorState._reset_state(reset_partial_state=True)
    GradientState._reset_state()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


class LlamaModuleRestored:
    """Liger patches transformers' Llama module (its rotary function and layer classes) for the whole process:
    put them back after a Liger arm, so the arms after it run transformers' own code."""

    NAMES = ("apply_rotary_pos_emb", "LlamaRMSNorm", "LlamaMLP")

    def __enter__(self):
        from transformers.models.llama import modeling_llama

        self.module = modeling_llama
        self.saved = {name: getattr(modeling_llama, name) for name in self.NAMES}

    def __exit__(self, *exc_info):
        for name, value in self.saved.items():
            setattr(self.module, name, value)


def run_arm(arm: Arm, bench: Bench) -> dict:
    """The arm's result: tokens/s, peak GPU memory, MFU; an arm that fails is reported and the run goes on."""
    import torch

    rows = bench.rows[arm.max_length]
    steps = step_count(arm, bench.settings, len(rows))
    work = Path(tempfile.mkdtemp(dir=bench.work))
    fresh_state(bench.device)
    started = time.perf_counter()
    try:
        with LlamaModuleRestored():
            record = (run_trl if arm.tool == "trl" else run_tunesmith)(arm, bench, steps, work)
        result = summarize(record, bench.settings)
    except Exception as exc:  # one run of every arm: a failed arm is reported and the others still run
        result = {"error": f"{type(exc).__name__}: {exc}"[:500], "traceback": traceback.format_exc()[-2000:]}
    result["seconds"] = round(time.perf_counter() - started, 1)
    if bench.device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(bench.device) / 2**30
    if "tokens_per_s" in result:
        lengths = [len(row.input_ids) for row in rows]
        result["flops_per_token"] = flops_per_token(bench.configs[arm.model], arm.method,
                                                    sum(n * n for n in lengths) / sum(lengths))
        achieved = result["flops_per_token"] * result["tokens_per_s"]
        result["mfu_spec"] = achieved / bench.peak_flops if bench.peak_flops else None
        result["mfu_matmul"] = achieved / bench.matmul_flops
    shutil.rmtree(work, ignore_errors=True)
    return {**asdict(arm), **result}
