"""The training recipe, top to bottom: set up the components, then loop (take batches → one optimizer step →
what follows a step) until the planned steps are done or early stopping says stop.

What accelerate is for here: it owns the device and the process layout. It places the model, wraps the model
and optimizer (`prepare`: a no-op wrapper in one process; DDP/FSDP/DeepSpeed when launched on several),
runs the backward pass and clips gradients (`clip_grad_norm_` reduces across processes). Batching, the loss
normalizer, checkpoints and exact resume stay tunesmith's: they are what makes a run reproducible.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from transformers import get_scheduler

from tunesmith.config.changes import resumed_config
from tunesmith.config.schema import RunConfig
from tunesmith.data.cache import keep_supervised, row_lengths, tokenized_split
from tunesmith.data.example import Splits
from tunesmith.data.splits import load_run_splits
from tunesmith.data.stream import stream_train_rows
from tunesmith.data.tokenize import TokenizedExample, TruncationStats
from tunesmith.errors import RunError
from tunesmith.json_files import finite, write_json
from tunesmith.models import add_lora, load_base_model, pick_dtype
from tunesmith.models.loading import cpu_bf16_speedup
from tunesmith.run_dir import RunDir
from tunesmith.train.batching import Batch, BatchPlan, count_supervised
from tunesmith.train.checkpoint import (
    DamagedCheckpoint,
    checkpoints_newest_first,
    load_checkpoint,
    prune_checkpoints,
    publish_best,
    save_checkpoint,
)
from tunesmith.train.loss import decoder_of, mean_supervised_loss, supervised_loss_sum
from tunesmith.train.metrics_log import TrainingLog
from tunesmith.train.state import TrainState

log = logging.getLogger("tunesmith")


class TrainingError(RunError):
    """Training cannot go on (e.g. a non-finite loss); the last good checkpoint is kept."""


@dataclass
class Training:
    """The components of one training run, built by `set_up`."""

    config: RunConfig
    run: RunDir
    accelerator: Accelerator
    model: torch.nn.Module
    tokenizer: object
    plan: BatchPlan
    validation_rows: Sequence[TokenizedExample]
    truncation: TruncationStats
    total_steps: int
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler

    @property
    def unwrapped(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.model)


@dataclass
class StepResult:
    loss: float
    grad_norm: float
    problem: str | None
    """Why the update was skipped (a non-finite loss or gradient norm), or None."""
    real_tokens: int
    padded_tokens: int
    supervised_tokens: int
    seconds: float


# ---- setup ------------------------------------------------------------------------------------------------------


def set_up(config: RunConfig, run: RunDir, splits: Splits) -> Training:
    """Build the components in dependency order: the runtime (threads, seed) before the model, so LoRA's
    initialization is seeded; the rows after the model (its tokenizer comes with it); the batch plan from the
    rows' lengths; the step count from the plan; the scheduler from the step count; accelerate's wrapping last."""
    tc = config.train
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    configure_runtime(config, accelerator.device)
    model, tokenizer = load_base_model(config.model, accelerator.device, liger=tc.liger)
    if config.method == "lora":
        model = add_lora(model, config.lora)
    if tc.compile:
        decoder_of(model).compile(dynamic=True)  # in place: the loss calls this same module
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("method %s: %s of %s parameters trainable", config.method, f"{trainable:,}",
             f"{sum(p.numel() for p in model.parameters()):,}")
    train_rows, validation_rows, truncation = training_rows(config, splits, tokenizer)
    plan = BatchPlan(train_rows, row_lengths(train_rows), tc.batch_size, tc.seed, tokenizer.pad_token_id,
                     packing=tc.packing, group_by_length=tc.group_by_length, max_length=config.data.max_length)
    total_steps = plan_steps(len(plan.epoch(0)), config)
    optimizer = build_optimizer(model, config)
    scheduler = get_scheduler(
        "constant_with_warmup" if tc.scheduler == "constant" else tc.scheduler, optimizer,
        num_warmup_steps=int(tc.warmup_ratio * total_steps), num_training_steps=total_steps,
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    return Training(config, run, accelerator, model, tokenizer, plan, validation_rows, truncation, total_steps,
                    optimizer, scheduler)


def configure_runtime(config: RunConfig, device: torch.device) -> None:
    """Threads and seed, and the device and dtype said in the log, so a run's speed can be explained."""
    threads = config.train.threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    torch.manual_seed(config.train.seed)
    dtype = pick_dtype(config.model.dtype, device)
    log.info("device %s, %d CPU threads, model dtype %s (model.dtype: %s)", device, threads,
             str(dtype).replace("torch.", ""), config.model.dtype)
    if device.type == "cpu" and config.model.dtype == "auto" and cpu_bf16_speedup() >= 1.5:
        # fp32 stays the CPU default (see BENCHMARKS.md, "CPU precision"); where bf16 matmuls are fast, say so.
        log.info("bf16 matmuls run %.1fx faster than fp32 on this CPU: `--set model.dtype=bfloat16` may "
                 "train faster, at some cost in precision", cpu_bf16_speedup())


def training_rows(config: RunConfig, splits: Splits, tokenizer):
    """``(training rows, validation rows, truncation of the training rows)``, tokenized (from the cache when it
    has them). With ``data.streaming`` the training file is streamed into the cache (``splits.train`` is
    empty); otherwise ``splits.train`` is tokenized. Rows whose answer was truncated away are dropped: they
    teach nothing."""
    if config.data.streaming:
        train_rows, truncation = stream_train_rows(config.data, splits.format, splits.labels, tokenizer)
    else:
        train_rows, truncation = tokenized_split(config.data, "train", splits.train, tokenizer)
    validation_rows, _ = tokenized_split(config.data, "validation", splits.validation, tokenizer)
    train_rows = keep_supervised(train_rows)
    if not train_rows:
        raise RunError("no training row has a supervised token left", "raise data.max_length")
    if validation_rows and not keep_supervised(validation_rows):
        raise RunError(f"no validation row has a supervised token left after truncation to data.max_length "
                       f"{config.data.max_length}, so there is no validation loss to select the best weights by",
                       "raise data.max_length, or give validation rows with shorter prompts")
    if truncation.truncated_rows:
        log.warning(
            "%d of %d training rows truncated to %d tokens (%d supervised tokens lost, %d rows left with none)",
            truncation.truncated_rows, truncation.rows, config.data.max_length,
            truncation.supervised_tokens_lost, truncation.rows_without_supervision,
        )
    return train_rows, validation_rows, truncation


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


def start_state(training: Training, resume: bool) -> TrainState:
    """A fresh state, or the newest intact checkpoint's (weights, optimizer, scheduler and RNG restored with it;
    a damaged newer one is passed over, and the log says so)."""
    run = training.run
    run.checkpoints.mkdir(parents=True, exist_ok=True)
    if not resume:
        return TrainState()
    candidates = checkpoints_newest_first(run.checkpoints)
    if not candidates:
        raise RunError(f"nothing to resume: {run.checkpoints} holds no checkpoint", "start without --resume")
    for folder in candidates:
        try:
            state = load_checkpoint(folder, training.unwrapped, training.optimizer, training.scheduler)
        except DamagedCheckpoint as damage:
            log.warning("checkpoint %s is damaged (%s); trying the one before it", folder.name, damage)
            continue
        log.info("resumed from %s (step %d of %d)", folder.name, state.step, training.total_steps)
        return state
    raise RunError(f"nothing to resume: every checkpoint in {run.checkpoints} is damaged",
                   "start the run again without --resume")


# ---- one step ---------------------------------------------------------------------------------------------------


def optimizer_step(training: Training, batches: list[Batch], state: TrainState) -> StepResult:
    """One optimizer step over ``batches`` (the micro-batches of gradient accumulation).

    One normalizer for the whole step, the supervised tokens of all micro-batches: accumulating 4 x 2 rows gives
    exactly the loss of 8 rows. The gradient norm is measured even without clipping: a NaN gradient can hide
    behind a finite loss. A non-finite step stops training (`train.on_nonfinite: stop`) or is skipped: no update,
    but its batches stay consumed, so a resumed run replays the same data.
    """
    started = time.perf_counter()
    model, tc = training.model, training.config.train
    micro_batches = [training.plan.collate(batch) for batch in batches]
    supervised = sum(count_supervised(batch) for batch in micro_batches)
    loss_sum = 0.0
    device = training.accelerator.device
    for batch in micro_batches:
        loss, _ = supervised_loss_sum(model, {key: value.to(device) for key, value in batch.items()})
        training.accelerator.backward(loss / supervised)
        loss_sum += float(loss.detach())
    loss = loss_sum / supervised
    grad_norm = float(
        training.accelerator.clip_grad_norm_(model.parameters(), tc.max_grad_norm) if tc.max_grad_norm
        else torch.nn.utils.get_total_norm([p.grad for p in model.parameters() if p.grad is not None])
    )
    problem = nonfinite_problem(loss, grad_norm)
    if problem is None:
        training.optimizer.step()
        training.scheduler.step()
    else:
        locations = [location for batch in batches for location in training.plan.locations(batch)]
        where = f"{problem} at step {state.step + 1} on rows {', '.join(locations[:8])}"
        if tc.on_nonfinite == "stop":
            raise TrainingError(where, "lower train.learning_rate or set train.on_nonfinite: skip; "
                                       "the last good checkpoint is kept")
        log.warning("skipped the update: %s", where)
    training.optimizer.zero_grad(set_to_none=True)
    return StepResult(
        loss=loss, grad_norm=grad_norm, problem=problem,
        real_tokens=sum(int(batch["attention_mask"].sum()) for batch in micro_batches),
        padded_tokens=sum(batch["input_ids"].numel() for batch in micro_batches), supervised_tokens=supervised,
        seconds=time.perf_counter() - started,
    )


def nonfinite_problem(loss: float, grad_norm: float) -> str | None:
    """What makes a step unusable (a NaN/inf loss or gradient norm), or None when it is fine."""
    if not math.isfinite(loss):
        return "non-finite loss"
    if not math.isfinite(grad_norm):
        return "non-finite gradient norm"
    return None


# ---- what follows a step ----------------------------------------------------------------------------------------


def after_step(training: Training, state: TrainState, result: StepResult, log_to: TrainingLog) -> bool:
    """Count the step, log its metrics line; at ``eval_every`` (and the last step) validate: a new best
    validation loss replaces the best weights, ``early_stopping_patience`` validations without one stop
    training; at ``save_every`` (and the last step, and an early stop) write a checkpoint. Returns whether
    training stops early."""
    tc = training.config.train
    state.step += 1
    state.tokens += result.real_tokens
    if result.problem:
        state.skipped_steps.append(state.step)
    lr = training.scheduler.get_last_lr()[0]
    line = {
        "step": state.step, "epoch": round(training.plan.progress(state), 4), "loss": finite(result.loss),
        "lr": lr, "grad_norm": finite(result.grad_norm),
        "tokens_per_s": result.real_tokens / result.seconds, "tokens": result.real_tokens,
        "padded_tokens": result.padded_tokens, "supervised_tokens": result.supervised_tokens,
        "elapsed_s": round(state.elapsed_s, 2),
    }
    if result.problem:
        line.update(skipped=True, reason=result.problem)
    log_to.record(line)
    log_to.step_done(result.loss, lr, state.tokens / state.elapsed_s)

    last_step = state.step == training.total_steps
    stop = False
    if training.validation_rows and (state.step % tc.eval_every == 0 or last_step):
        val_loss, _ = mean_supervised_loss(training.model, training.validation_rows, tc.batch_size,
                                           training.tokenizer.pad_token_id)
        if not math.isfinite(val_loss):
            # Never "best": a NaN compares false with everything, and an early stop would follow.
            where = f"non-finite validation loss ({val_loss}) at step {state.step}"
            if tc.on_nonfinite == "stop":
                raise TrainingError(where, "lower train.learning_rate or set train.on_nonfinite: skip; the last "
                                           "good checkpoint and best weights are kept")
            log.warning("skipped the validation: %s", where)
            log_to.record({"step": state.step, "val_loss": None, "skipped": True,
                           "reason": "non-finite validation loss"})
        else:
            log_to.record({"step": state.step, "val_loss": val_loss})
            log_to.say(f"step {state.step}: validation loss {val_loss:.4f}")
            if state.best_val_loss is None or val_loss < state.best_val_loss:
                state.best_val_loss, state.best_step, state.evals_without_gain = val_loss, state.step, 0
                publish_best(training.run.checkpoints, training.unwrapped)
            else:
                state.evals_without_gain += 1
                patience = tc.early_stopping_patience
                stop = bool(patience) and state.evals_without_gain >= patience
    if not training.validation_rows and last_step:
        state.best_step = state.step
        publish_best(training.run.checkpoints, training.unwrapped)
    if state.step % tc.save_every == 0 or last_step or stop:
        save_checkpoint(training.run.checkpoints, training.unwrapped, training.optimizer, training.scheduler, state)
        prune_checkpoints(training.run.checkpoints, tc.keep_checkpoints)
    if last_step and state.best_step is None:
        raise TrainingError("no validation gave a finite loss, so no weights can be called the best",
                            "lower train.learning_rate; the checkpoints are kept")
    if stop:
        log_to.say(f"early stop at step {state.step}: no better validation loss in "
                   f"{tc.early_stopping_patience} evaluations")
    return stop


# ---- the loop ---------------------------------------------------------------------------------------------------


def train(config: RunConfig, run: RunDir, splits: Splits, resume: bool = False) -> dict:
    """Fine-tune the configured model on ``splits.train``; keep the best weights by validation loss.

    Writes `checkpoints/` (atomic, resumable), `checkpoints/best`, `metrics.jsonl`, TensorBoard events and
    `train_summary.json`; returns the summary.
    """
    run.root.mkdir(parents=True, exist_ok=True)
    with run.lock():
        if resume and run.config_path.is_file():
            resumed_config(run.config(), config, str(run.root))  # the run's own settings, or an error naming them
        training = set_up(config, run, splits)
        state = start_state(training, resume)
        stopped_early = False
        started = time.perf_counter() - state.elapsed_s  # training time counts across resumes
        with TrainingLog(run, training.total_steps, state.step if resume else None) as log_to:
            while state.step < training.total_steps and not stopped_early:
                batches = training.plan.take(state, config.train.grad_accumulation)
                result = optimizer_step(training, batches, state)
                state.elapsed_s = time.perf_counter() - started
                stopped_early = after_step(training, state, result, log_to)
        return write_summary(training, state, stopped_early)


def train_run(config: RunConfig, run: RunDir, resume: bool = False) -> dict:
    """The pipeline's training stage: `train` on the run's splits."""
    return train(config, run, load_run_splits(config.data), resume)


def write_summary(training: Training, state: TrainState, stopped_early: bool) -> dict:
    model = training.model
    summary = {
        "steps": state.step, "planned_steps": training.total_steps, "best_step": state.best_step,
        "best_val_loss": state.best_val_loss, "stopped_early": stopped_early, "skipped_steps": state.skipped_steps,
        "train_rows": len(training.plan.rows), "validation_rows": len(training.validation_rows),
        "train_tokens": state.tokens, "elapsed_s": round(state.elapsed_s, 2),
        "tokens_per_s": state.tokens / state.elapsed_s if state.elapsed_s else None,
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in model.parameters()), "device": str(training.accelerator.device),
        "threads": torch.get_num_threads(), "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "truncation": vars(training.truncation),
    }
    write_json(training.run.train_summary, summary)
    return summary
