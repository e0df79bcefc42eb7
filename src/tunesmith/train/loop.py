"""The training recipe: setup → loop → save, in one readable function (`train`)."""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from dataclasses import dataclass

import torch

from tunesmith.atomic import recover_folder, remove_stale_staging
from tunesmith.config.schema import RunConfig
from tunesmith.data.example import Splits
from tunesmith.data.cache import keep_supervised, row_lengths, tokenized_split
from tunesmith.data.stream import stream_train_rows
from tunesmith.errors import RunError
from tunesmith.models import add_lora, load_base_model, pick_device, pick_dtype
from tunesmith.models.loading import cpu_bf16_speedup
from tunesmith.run_dir import RunDir
from tunesmith.train.batching import collate, count_supervised, epoch_batches
from tunesmith.train.checkpoint import (
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    publish_best,
    save_checkpoint,
)
from tunesmith.train.loss import decoder_of, mean_supervised_loss, supervised_loss_sum
from tunesmith.train.packing import collate_packed, epoch_packed_batches

log = logging.getLogger("tunesmith")


class TrainingError(RunError):
    """Training cannot go on (e.g. a non-finite loss); the last good checkpoint is kept."""


@dataclass
class _Cursor:
    """Where the data stream stands: the next batch is `epoch_batches(epoch)[batch]`."""

    epoch: int = 0
    batch: int = 0


def configure_runtime(config: RunConfig) -> torch.device:
    """Threads, seeds and the device, said in the log so a run's speed can be explained."""
    threads = config.train.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    torch.manual_seed(config.train.seed)
    device = pick_device()
    dtype = pick_dtype(config.model.dtype, device)
    log.info("device %s, %d CPU threads, model dtype %s (model.dtype: %s)", device, threads,
             str(dtype).replace("torch.", ""), config.model.dtype)
    if device.type == "cpu" and config.model.dtype == "auto":
        # fp32 stays the CPU default (bf16 autocast is far slower on many CPUs, and fp32 scored higher in our
        # demo); where plain bf16 weights are fast, say so: on a 2-core AVX512-BF16 machine a bf16 matmul
        # measured 4x faster and whole LoRA training steps 1.3x faster.
        speedup = cpu_bf16_speedup()
        if speedup >= 1.5:
            log.info("bf16 matmuls run %.1fx faster than fp32 on this CPU: `--set model.dtype=bfloat16` may "
                     "train faster, at some cost in precision", speedup)
    return device


def build_optimizer(model, config: RunConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and norm weights (1-D tensors), as is standard."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.train.learning_rate)


def plan_steps(num_batches: int, config: RunConfig) -> int:
    if config.train.max_steps:
        return config.train.max_steps
    per_epoch = math.ceil(num_batches / config.train.grad_accumulation)
    return max(1, math.ceil(config.train.epochs * per_epoch))


def train(config: RunConfig, run: RunDir, splits: Splits, resume: bool = False) -> dict:
    """Fine-tune the configured model on ``splits.train``; keep the best weights by validation loss.

    Writes `checkpoints/` (atomic, resumable), `checkpoints/best`, `metrics.jsonl`, TensorBoard events and
    `train_summary.json`; returns the summary.
    """
    from accelerate import Accelerator
    from transformers import get_scheduler

    tc = config.train
    device = configure_runtime(config)
    model, tokenizer = load_base_model(config.model, device)
    if config.method == "lora":
        model = add_lora(model, config.lora)
    if tc.compile:
        decoder_of(model).compile(dynamic=True)  # in place: the loss calls this same module
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total_params = sum(p.numel() for p in model.parameters())
    log.info("method %s: %s of %s parameters trainable", config.method, f"{trainable:,}", f"{total_params:,}")

    if config.data.streaming:  # `splits.train` is empty: the training file is streamed into the cache
        train_rows, truncation = stream_train_rows(config.data, tokenizer)
    else:
        train_rows, truncation = tokenized_split(config.data, "train", splits.train, tokenizer)
    val_rows, _ = tokenized_split(config.data, "validation", splits.validation, tokenizer)
    train_rows = keep_supervised(train_rows)
    if not train_rows:
        raise RunError("no training row has a supervised token left", "raise data.max_length")
    if truncation.truncated_rows:
        log.warning(
            "%d of %d training rows truncated to %d tokens (%d supervised tokens lost, %d rows left with none)",
            truncation.truncated_rows, truncation.rows, config.data.max_length,
            truncation.supervised_tokens_lost, truncation.rows_without_supervision,
        )
    lengths = row_lengths(train_rows)
    pad = tokenizer.pad_token_id
    # A batch is a list of packs: the row indices concatenated into one sequence (a single row unless packing).
    if tc.packing:
        def batches_of(epoch: int) -> list[list[list[int]]]:
            return epoch_packed_batches(lengths, config.data.max_length, tc.batch_size, tc.seed, epoch)

        def collate_batch(packs: list[list[int]]) -> dict[str, torch.Tensor]:
            return collate_packed([[train_rows[i] for i in pack] for pack in packs], pad)
    else:
        def batches_of(epoch: int) -> list[list[list[int]]]:
            return [[[i] for i in rows] for rows in epoch_batches(lengths, tc.batch_size, tc.seed, epoch,
                                                                   tc.group_by_length)]

        def collate_batch(packs: list[list[int]]) -> dict[str, torch.Tensor]:
            return collate([train_rows[i] for (i,) in packs], pad)
    total_steps = plan_steps(len(batches_of(0)), config)
    optimizer = build_optimizer(model, config)
    scheduler = get_scheduler(
        "constant_with_warmup" if tc.scheduler == "constant" else tc.scheduler, optimizer,
        num_warmup_steps=int(tc.warmup_ratio * total_steps), num_training_steps=total_steps,
    )
    accelerator = Accelerator(cpu=device.type == "cpu")
    model, optimizer = accelerator.prepare(model, optimizer)

    state = {"step": 0, "cursor": [0, 0], "best_val_loss": None, "best_step": None, "evals_without_gain": 0,
             "tokens": 0, "elapsed_s": 0.0, "skipped_steps": []}
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    recover_folder(run.best)
    for stale in remove_stale_staging(run.checkpoints):
        log.info("removed %s, left by an interrupted checkpoint write", stale.name)
    if resume:
        last = latest_checkpoint(run.checkpoints)
        if last is None:
            raise RunError(f"nothing to resume: {run.checkpoints} holds no checkpoint")
        state = load_checkpoint(last, accelerator.unwrap_model(model), optimizer, scheduler)
        state.setdefault("skipped_steps", [])  # checkpoints written before `train.on_nonfinite` existed
        _truncate_metrics(run, state["step"])
        log.info("resumed from %s (step %d of %d)", last.name, state["step"], total_steps)
    cursor = _Cursor(*state["cursor"])
    epoch_plan = batches_of(cursor.epoch)

    def next_batch() -> list[list[int]]:
        nonlocal epoch_plan
        if cursor.batch >= len(epoch_plan):
            cursor.epoch, cursor.batch = cursor.epoch + 1, 0
            epoch_plan = batches_of(cursor.epoch)
        cursor.batch += 1
        return epoch_plan[cursor.batch - 1]

    from torch.utils.tensorboard import SummaryWriter

    # Like `_truncate_metrics`: TensorBoard hides the events a killed run logged after its last checkpoint.
    writer = SummaryWriter(str(run.tensorboard), purge_step=state["step"] + 1 if resume else None)
    metrics_file = run.metrics.open("a", encoding="utf-8")
    progress = _progress_bar(total_steps, state["step"])
    started = time.perf_counter() - state["elapsed_s"]
    stopped_early = False
    try:
        while state["step"] < total_steps:
            step_started = time.perf_counter()
            indices = [next_batch() for _ in range(tc.grad_accumulation)]
            micro_batches = [collate_batch(packs) for packs in indices]
            # One normalizer for the whole step: accumulating 4 x 2 rows gives exactly the loss of 8 rows.
            supervised = sum(count_supervised(batch) for batch in micro_batches)
            loss_sum = 0.0
            for batch in micro_batches:
                batch = {key: value.to(device) for key, value in batch.items()}
                micro_loss, _ = supervised_loss_sum(model, batch)
                accelerator.backward(micro_loss / supervised)
                loss_sum += float(micro_loss.detach())
            loss = loss_sum / supervised
            grad_norm = float(
                accelerator.clip_grad_norm_(model.parameters(), tc.max_grad_norm) if tc.max_grad_norm
                # measured even without clipping: a NaN gradient can hide behind a finite loss
                else torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
            )
            problem = nonfinite_problem(loss, grad_norm)
            if problem is None:
                optimizer.step()
                scheduler.step()
            else:
                sources = [train_rows[i].source for packs in indices for pack in packs for i in pack]
                where = f"{problem} at step {state['step'] + 1} on rows {', '.join(sources[:8])}"
                if tc.on_nonfinite == "stop":
                    raise TrainingError(where, "lower train.learning_rate or set train.on_nonfinite: skip; "
                                               "the last good checkpoint is kept")
                # The step still counts and its batches stay consumed, so a resumed run replays the same data.
                log.warning("skipped the update: %s", where)
                state["skipped_steps"].append(state["step"] + 1)
            optimizer.zero_grad(set_to_none=True)

            state["step"] += 1
            state["cursor"] = [cursor.epoch, cursor.batch]
            real_tokens = sum(int(batch["attention_mask"].sum()) for batch in micro_batches)
            state["tokens"] += real_tokens
            state["elapsed_s"] = time.perf_counter() - started
            record = {
                "step": state["step"], "epoch": round(cursor.epoch + cursor.batch / len(epoch_plan), 4),
                "loss": _finite_or_none(loss), "lr": scheduler.get_last_lr()[0],
                "grad_norm": _finite_or_none(grad_norm),
                "tokens_per_s": real_tokens / (time.perf_counter() - step_started),
                "tokens": real_tokens, "padded_tokens": sum(batch["input_ids"].numel() for batch in micro_batches),
                "supervised_tokens": supervised, "elapsed_s": round(state["elapsed_s"], 2),
            }
            if problem:
                record.update(skipped=True, reason=problem)
            _write_metrics(metrics_file, writer, record)
            progress.update(1)
            progress.set_postfix(loss=f"{loss:.4f}", lr=f"{record['lr']:.2e}",
                                 tok_s=f"{state['tokens'] / state['elapsed_s']:.0f}", refresh=False)

            last_step = state["step"] == total_steps
            if val_rows and (state["step"] % tc.eval_every == 0 or last_step):
                val_loss, _ = mean_supervised_loss(model, val_rows, tc.batch_size, tokenizer.pad_token_id)
                _write_metrics(metrics_file, writer, {"step": state["step"], "val_loss": val_loss})
                progress.write(f"step {state['step']}: validation loss {val_loss:.4f}")
                if state["best_val_loss"] is None or val_loss < state["best_val_loss"]:
                    state.update(best_val_loss=val_loss, best_step=state["step"], evals_without_gain=0)
                    publish_best(run.checkpoints, accelerator.unwrap_model(model))
                else:
                    state["evals_without_gain"] += 1
                    stopped_early = bool(tc.early_stopping_patience) and (
                        state["evals_without_gain"] >= tc.early_stopping_patience
                    )
            if not val_rows and last_step:
                state["best_step"] = state["step"]
                publish_best(run.checkpoints, accelerator.unwrap_model(model))
            if state["step"] % tc.save_every == 0 or last_step or stopped_early:
                save_checkpoint(run.checkpoints, state["step"], accelerator.unwrap_model(model), optimizer,
                                scheduler, state)
                prune_checkpoints(run.checkpoints, tc.keep_checkpoints)
            if stopped_early:
                progress.write(f"early stop at step {state['step']}: no better validation loss in "
                               f"{tc.early_stopping_patience} evaluations")
                break
    finally:
        progress.close()
        metrics_file.close()
        writer.close()

    summary = {
        "steps": state["step"], "planned_steps": total_steps, "best_step": state["best_step"],
        "best_val_loss": state["best_val_loss"], "stopped_early": stopped_early,
        "skipped_steps": state["skipped_steps"], "train_rows": len(train_rows),
        "validation_rows": len(val_rows), "train_tokens": state["tokens"], "elapsed_s": round(state["elapsed_s"], 2),
        "tokens_per_s": state["tokens"] / state["elapsed_s"] if state["elapsed_s"] else None,
        "trainable_params": trainable, "total_params": total_params, "device": str(device),
        "threads": torch.get_num_threads(), "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "truncation": vars(truncation),
    }
    run.train_summary.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return summary


def nonfinite_problem(loss: float, grad_norm: float) -> str | None:
    """What makes a step unusable (a NaN/inf loss or gradient norm), or None when it is fine."""
    if not math.isfinite(loss):
        return "non-finite loss"
    if not math.isfinite(grad_norm):
        return "non-finite gradient norm"
    return None


def _finite_or_none(value: float) -> float | None:
    # JSON has no NaN/inf (json.dumps would write bare `NaN`, which strict readers reject)
    return value if math.isfinite(value) else None


def _write_metrics(file, writer, record: dict) -> None:
    file.write(json.dumps(record) + "\n")
    file.flush()
    for key, value in record.items():
        if key != "step" and isinstance(value, (int, float)):
            writer.add_scalar(f"train/{key}" if key != "val_loss" else "validation/loss", value, record["step"])


def _truncate_metrics(run: RunDir, step: int) -> None:
    """Drop metric lines logged after the checkpoint we resume from (they will be logged again)."""
    if not run.metrics.is_file():
        return
    kept = [line for line in run.metrics.read_text(encoding="utf-8").splitlines()
            if line.strip() and json.loads(line)["step"] <= step]
    run.metrics.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _progress_bar(total: int, initial: int):
    from tqdm.auto import tqdm

    # In CI logs (no TTY) a redraw every few seconds is enough; on a terminal it updates live.
    return tqdm(total=total, initial=initial, desc="train", unit="step", file=sys.stderr,
                mininterval=0.5 if sys.stderr.isatty() else 10.0, dynamic_ncols=True)
