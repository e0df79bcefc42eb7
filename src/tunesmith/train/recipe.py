"""The training recipe, top to bottom: set up the components, then loop (take the step's batch → one optimizer
step → what follows a step) until the planned steps are done or early stopping says stop.

What accelerate is for here: it owns the device and the process layout. It wraps the loss module and the
optimizer (`prepare`: nothing in one process; DDP, FSDP or DeepSpeed in a job of several, per the
`distributed:` section), runs the backward pass and clips gradients (`clip_grad_norm_` reduces across
processes). Batching, the loss normalizer, checkpoints and exact resume stay tunesmith's: they are what makes a
run reproducible, and what makes N processes train the model one process trains (see `tunesmith.distributed`):
each process trains on its share of the same global batch, and the loss is normalized by the supervised tokens
of the whole global batch, counted across processes.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from accelerate import Accelerator
from transformers import get_scheduler

from tunesmith import distributed
from tunesmith.config.changes import resumed_config
from tunesmith.config.schema import RunConfig
from tunesmith.config.vocabulary import is_preference
from tunesmith.data.cache import row_lengths
from tunesmith.data.run_inputs import RunInputs
from tunesmith.data.tokenize import TruncationStats
from tunesmith.errors import RunError
from tunesmith.json_files import finite, write_json
from tunesmith.models import load_training_model, pick_dtype
from tunesmith.models.init_from import settle_init_from
from tunesmith.models.loading import cpu_bf16_speedup
from tunesmith.predict.loss import SupervisedLoss, decoder_of
from tunesmith.predict.validation_values import describe_validation
from tunesmith.run_dir import RunDir
from tunesmith.threads import use_threads
from tunesmith.train.batching import Batch, BatchPlan
from tunesmith.train.best import align_best, mark_best
from tunesmith.train.budget import Budget, describe_budget, plan_budget
from tunesmith.train.checkpoint import (
    Checkpoint,
    newest_intact_checkpoint,
    prune_checkpoints,
    publish_best,
    save_checkpoint,
)
from tunesmith.train.metrics_log import TrainingLog
from tunesmith.train.preference import PairBatchPlan, PreferenceLoss, step_measures
from tunesmith.train.resume import check_global_batch, check_resume, data_fingerprint, global_batch_of
from tunesmith.train.rows import check_rows_fit_method, training_rows
from tunesmith.train.state import TrainState
from tunesmith.train.strategy import (
    accelerator_for,
    backward_scale,
    check_strategy,
    full_state,
    load_optimizer_state,
    micro_batch,
    strategy_of,
)
from tunesmith.train.validation import ValidationSet, check_val_metrics, validate, validation_set

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
    """The loss module (`SupervisedLoss`, or `PreferenceLoss` for a preference method) as accelerate wrapped it
    (its forward is the loss)."""
    tokenizer: object
    plan: BatchPlan
    validation: ValidationSet
    truncation: TruncationStats
    budget: Budget
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler

    @property
    def total_steps(self) -> int:
        return self.budget.steps

    @property
    def unwrapped(self) -> torch.nn.Module:
        """The causal LM (PEFT-wrapped for adapter methods) inside the wrapped loss module."""
        return self.accelerator.unwrap_model(self.model).model

    @property
    def global_batch(self) -> int:
        return self.plan.batch_size


@dataclass
class StepResult:
    loss: float
    grad_norm: float
    problem: str | None
    """Why the update was skipped (a non-finite loss or gradient norm), or None."""
    real_tokens: int
    padded_tokens: int
    normalizer: int
    """What the loss is normalized by: the global batch's supervised tokens, or its pairs (preference methods)."""
    seconds: float
    measures: dict[str, float]
    """A preference step's rewards and accuracy over its pairs (`tunesmith.train.preference.STEP_MEASURES`)."""


# ---- setup ------------------------------------------------------------------------------------------------------


def set_up(config: RunConfig, run: RunDir, inputs: RunInputs,
           resume: bool = False) -> tuple[Training, Checkpoint | None]:
    """Build the components in dependency order: what `train.val_metrics` needs checked before anything loads;
    the runtime (threads, seed) before the model, so LoRA's initialization is seeded (and the same in every
    process); a resumed checkpoint's weights into the model before anything wraps it, and `best/` put back on the
    timeline it continues (`tunesmith.train.best`); the rows after the model (its
    tokenizer comes with it); the batch plan from the rows' lengths; the budget (steps, validations) from the plan
    and, on resume, from the checkpoint's (its `auto` choices stand); the scheduler from the step count;
    accelerate's wrapping last (FSDP shards the model's own decoder layers). Returns the checkpoint resumed from,
    for `start_state`."""
    tc = config.train
    splits, task = inputs.splits, inputs.task
    check_val_metrics(config, splits, task)
    check_rows_fit_method(config, splits)
    device = distributed.device()
    configure_runtime(config, device)
    model, tokenizer = load_training_model(config, device)
    checkpoint = newest_intact_checkpoint(run) if resume else None
    if checkpoint is not None:
        checkpoint.apply_weights(model)
        align_best(run.checkpoints, checkpoint, model)
    if tc.compile:
        decoder_of(model).compile(dynamic=True)  # in place: the loss calls this same module
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("method %s: %s of %s parameters trainable", config.method, f"{trainable:,}",
             f"{sum(p.numel() for p in model.parameters()):,}")
    with distributed.main_first():  # rank 0 tokenizes into the cache, the others read it from there
        train_rows, validation_rows, truncation = training_rows(config, splits, tokenizer)
    processes = distributed.world_size()
    global_batch = global_batch_of(config)
    if processes > 1 or tc.grad_accumulation > 1:
        log.info("global batch %d = batch_size %d x %d processes x grad_accumulation %d", global_batch,
                 tc.batch_size, processes, tc.grad_accumulation)
    plan = batch_plan_of(config, train_rows, tokenizer.pad_token_id)
    budget = plan_budget(tc, len(train_rows), len(plan.epoch(0)), checkpoint.state.budget if checkpoint else None)
    log.info(describe_budget(budget, tc))
    optimizer = build_optimizer(model, config)
    scheduler = get_scheduler(
        "constant_with_warmup" if tc.scheduler == "constant" else tc.scheduler, optimizer,
        num_warmup_steps=int(tc.warmup_ratio * budget.steps), num_training_steps=budget.steps,
    )
    accelerator = accelerator_for(config)
    loss = PreferenceLoss.of(model, config) if is_preference(config.method) else SupervisedLoss(model)
    loss_module, optimizer = accelerator.prepare(loss, optimizer)
    training = Training(config, run, accelerator, loss_module, tokenizer, plan,
                        validation_set(config, splits, task, validation_rows), truncation, budget, optimizer,
                        scheduler)
    return training, checkpoint


def batch_plan_of(config: RunConfig, train_rows, pad_token_id: int) -> BatchPlan:
    """The batches of ``train_rows``: rows, packed or padded, or pairs (a preference method's rows)."""
    tc = config.train
    if is_preference(config.method):
        return PairBatchPlan(train_rows, global_batch_of(config), tc.seed, pad_token_id,
                             group_by_length=tc.group_by_length, packing=tc.packing,
                             max_length=config.data.max_length)
    return BatchPlan(train_rows, row_lengths(train_rows), global_batch_of(config), tc.seed, pad_token_id,
                     packing=tc.packing, group_by_length=tc.group_by_length, max_length=config.data.max_length)


def configure_runtime(config: RunConfig, device: torch.device) -> None:
    """Threads and seed, and the device and dtype said in the log, so a run's speed can be explained."""
    # The cores are shared by the processes of this job on this machine, and by whatever else runs there.
    threads = use_threads(config.train.threads, distributed.processes_per_machine())
    torch.manual_seed(config.train.seed)
    dtype = pick_dtype(config.model.dtype, device)
    log.info("device %s, %d CPU threads, model dtype %s (model.dtype: %s)", device, threads,
             str(dtype).replace("torch.", ""), config.model.dtype)
    if device.type == "cpu" and config.model.dtype == "auto" and cpu_bf16_speedup() >= 1.5:
        # fp32 stays the CPU default (see BENCHMARKS.md, "CPU precision"); where bf16 matmuls are fast, say so.
        log.info("bf16 matmuls run %.1fx faster than fp32 on this CPU: `--set model.dtype=bfloat16` may "
                 "train faster, at some cost in precision", cpu_bf16_speedup())


def build_optimizer(model, config: RunConfig) -> torch.optim.Optimizer:
    """AdamW; no weight decay on biases and norm weights (1-D tensors), as is standard."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.train.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW([g for g in groups if g["params"]], lr=config.train.learning_rate)


def start_state(training: Training, checkpoint: Checkpoint | None) -> TrainState:
    """A fresh state, or the resumed checkpoint's, with its optimizer, scheduler and RNG restored. The global
    batch must be the checkpoint's (`tunesmith.train.resume.check_global_batch`)."""
    if checkpoint is None:
        return TrainState(budget=training.budget)
    state = checkpoint.state
    check_global_batch(checkpoint.folder, state, training.config)
    state.budget = training.budget  # the same unless a resume set a number (a longer max_steps)
    load_optimizer_state(training, checkpoint.optimizer)
    training.scheduler.load_state_dict(checkpoint.scheduler)
    checkpoint.apply_rng()
    log.info("resumed from %s (step %d of %d)", checkpoint.folder.name, state.step, training.total_steps)
    return state


# ---- one step ---------------------------------------------------------------------------------------------------


def optimizer_step(training: Training, batch: Batch, state: TrainState) -> StepResult:
    """One optimizer step over a global ``batch``: this process runs its `BatchPlan.share` as its
    ``grad_accumulation`` micro-batches.

    One normalizer for the whole step, the supervised tokens (a preference method: the pairs) of the whole global
    batch (every micro-batch of every process): accumulating 4 x 2 rows, or 2 processes x 4 rows, gives exactly
    the loss of 8 rows. Gradients are synchronized once, after the last micro-batch (`no_sync` before it). The
    gradient norm is measured even without clipping: a NaN gradient can hide behind a finite loss. A non-finite
    step stops training (`train.on_nonfinite: stop`) or is skipped: no update, but its batch stays consumed, so a
    resumed run replays the same data. Every process sees the same loss and norm, so they all decide alike.
    """
    started = time.perf_counter()
    model, tc, accelerator = training.model, training.config.train, training.accelerator
    shares = training.plan.share(batch, distributed.rank(), distributed.world_size(), tc.grad_accumulation)
    micro_batches = [training.plan.collate(share) if share else training.plan.placeholder(batch) for share in shares]
    local_count = sum(training.plan.count(tensors) for tensors in micro_batches)
    padded_tokens = sum(tensors["input_ids"].numel() for share, tensors in zip(shares, micro_batches) if share)
    normalizer = int(distributed.all_reduce_sum([local_count])[0])
    scale = backward_scale(training) / normalizer
    loss_sum, measured = 0.0, []
    for index, tensors in enumerate(micro_batches):
        with micro_batch(training, last=index == len(micro_batches) - 1):
            loss, extra = model(**{key: value.to(accelerator.device) for key, value in tensors.items()})
            accelerator.backward(loss * scale)
        loss_sum += float(loss.detach())
        measured.append(extra)
    loss_sum, padded_tokens = distributed.all_reduce_sum([loss_sum, padded_tokens])
    loss = loss_sum / normalizer
    measures = step_measures(measured, normalizer) if is_preference(training.config.method) else {}
    # max_norm inf measures without clipping (the gradients are multiplied by exactly 1).
    grad_norm = float(accelerator.clip_grad_norm_(model.parameters(), tc.max_grad_norm or math.inf))
    problem = nonfinite_problem(loss, grad_norm)
    if problem is None:
        training.optimizer.step()
        training.scheduler.step()
    else:
        locations = training.plan.locations(batch)
        where = f"{problem} at step {state.step + 1} on rows {', '.join(locations[:8])}"
        if tc.on_nonfinite == "stop":
            raise TrainingError(where, "lower train.learning_rate or set train.on_nonfinite: skip; "
                                       "the last good checkpoint is kept")
        log.warning("skipped the update: %s", where)
    training.optimizer.zero_grad(set_to_none=True)
    return StepResult(
        loss=loss, grad_norm=grad_norm, problem=problem,
        real_tokens=training.plan.real_tokens(batch), padded_tokens=int(padded_tokens), normalizer=normalizer,
        seconds=time.perf_counter() - started, measures=measures,
    )


def nonfinite_problem(loss: float, grad_norm: float) -> str | None:
    """What makes a step unusable (a NaN/inf loss or gradient norm), or None when it is fine."""
    if not math.isfinite(loss):
        return "non-finite loss"
    if not math.isfinite(grad_norm):
        return "non-finite gradient norm"
    return None


# ---- what follows a step ----------------------------------------------------------------------------------------


def after_step(training: Training, state: TrainState, result: StepResult,
               log_to: TrainingLog) -> tuple[bool, dict | None]:
    """Count the step, log its metrics line; at ``eval_every`` (and the last step) validate: a new best
    validation loss replaces the best weights, ``early_stopping_patience`` validations without one stop
    training; at ``save_every`` (and the last step, and an early stop) write a checkpoint. Returns whether
    training stops early, and the step's validation values (``{"val_loss": ..., "val_<metric>": ...}``; None
    when it had none)."""
    tc, budget = training.config.train, training.budget
    state.step += 1
    state.tokens += result.real_tokens
    if result.problem:
        state.skipped_steps.append(state.step)
    lr = training.scheduler.get_last_lr()[0]
    line = {
        "step": state.step, "epoch": round(training.plan.progress(state), 4), "loss": finite(result.loss),
        "lr": lr, "grad_norm": finite(result.grad_norm),
        "tokens_per_s": result.real_tokens / result.seconds, "tokens": result.real_tokens,
        "padded_tokens": result.padded_tokens,
        "pairs" if is_preference(training.config.method) else "supervised_tokens": result.normalizer,
        "elapsed_s": round(state.elapsed_s, 2), **{key: finite(value) for key, value in result.measures.items()},
    }
    if result.problem:
        line.update(skipped=True, reason=result.problem)
    log_to.record(line)
    log_to.step_done(result.loss, lr, state.tokens / state.elapsed_s)

    last_step = state.step == budget.steps
    stop = False
    validation = None
    if training.validation.rows and (state.step % budget.eval_every == 0 or last_step):
        values = validate(training.model, training.unwrapped, training.tokenizer, training.validation,
                          training.config)
        val_loss = values["val_loss"]
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
            log_to.record({"step": state.step, **values})
            validation = values
            log_to.say(f"step {state.step}: {describe_validation(values)}")
            if state.best_val_loss is None or val_loss < state.best_val_loss:
                state.best_val_loss, state.best_step, state.evals_without_gain = val_loss, state.step, 0
                state.best_val_metrics = dict(values)
                write_best(training, state)
            else:
                state.evals_without_gain += 1
                patience = tc.early_stopping_patience
                stop = bool(patience) and state.evals_without_gain >= patience
    if not training.validation.rows and last_step:
        state.best_step = state.step
        write_best(training, state)
    if state.step % budget.save_every == 0 or last_step or stop:
        write_checkpoint(training, state)
    if last_step and state.best_step is None:
        raise TrainingError("no validation gave a finite loss, so no weights can be called the best",
                            "lower train.learning_rate; the checkpoints are kept")
    if stop:
        log_to.say(f"early stop at step {state.step}: no better validation loss in "
                   f"{tc.early_stopping_patience} evaluations")
    return stop, validation


def write_best(training: Training, state: TrainState) -> None:
    """Replace the best weights with the model's now, and record their step (rank 0 writes; with sharded weights
    every process takes part in gathering)."""
    weights, _ = full_state(training, with_optimizer=False)
    if distributed.is_main():
        publish_best(training.run.checkpoints, training.unwrapped, weights)
        mark_best(training.run.checkpoints, state.step, state.best_val_loss)


def write_checkpoint(training: Training, state: TrainState) -> None:
    """A checkpoint of full (unsharded) weights and optimizer state, so it resumes on any number of processes."""
    weights, optimizer_state = full_state(training, with_optimizer=True)
    if distributed.is_main():
        state.global_batch = training.global_batch
        save_checkpoint(training.run.checkpoints, training.unwrapped, optimizer_state, training.scheduler, state,
                        weights)
        prune_checkpoints(training.run.checkpoints, training.config.train.keep_checkpoints)


# ---- the loop ---------------------------------------------------------------------------------------------------


def train(config: RunConfig, run: RunDir, inputs: RunInputs, resume: bool = False,
          on_validation: Callable[[int, dict[str, float]], None] | None = None) -> dict:
    """Fine-tune the configured model on the training split of ``inputs`` (the run's splits and task); keep the
    best weights by validation loss. The pipeline's training stage.

    Writes `checkpoints/` (atomic, resumable), `checkpoints/best`, `metrics.jsonl`, TensorBoard events and
    `train_summary.json`; returns the summary. ``on_validation(step, values)`` is called on every process after
    each finite validation, once that step's best weights and checkpoint are written, with the values
    metrics.jsonl records for that step (``{"val_loss": ..., "val_<metric>": ...}``, the metrics of
    `train.val_metrics`); whatever it raises (a sweep's pruning) ends training and propagates, leaving the run
    folder as an interrupted run leaves it.
    """
    check_strategy(config)  # before anything is loaded
    distributed.start(config.distributed.timeout_minutes)
    if distributed.is_main():
        run.root.mkdir(parents=True, exist_ok=True)
    with run.lock():
        distributed.barrier()  # rank 0 holds the lock and has repaired the folder before anyone reads it
        own = run.config() if run.config_path.is_file() else config  # the user's data, also under `rag` rows
        data_files = data_fingerprint(own.data)
        if resume:
            if run.config_path.is_file():
                resumed_config(own, config, str(run.root))  # the run's own settings, or an error naming them
            check_resume(run, config, data_files)  # before anything loads (and the pipeline checked before writing)
        settle_init_from(run, config)  # model.init_from: recorded at the start, refused on resume once it changed
        training, checkpoint = set_up(config, run, inputs, resume)
        if distributed.is_main():
            run.checkpoints.mkdir(exist_ok=True)
        state = start_state(training, checkpoint)
        state.data_files = data_files
        stopped_early = False
        started = time.perf_counter() - state.elapsed_s  # training time counts across resumes
        with TrainingLog(run, training.total_steps, state.step if resume else None, distributed.is_main(),
                         config) as log_to:
            while state.step < training.total_steps and not stopped_early:
                batch = training.plan.take(state)
                result = optimizer_step(training, batch, state)
                state.elapsed_s = time.perf_counter() - started
                stopped_early, validation = after_step(training, state, result, log_to)
                if validation is not None and on_validation is not None:
                    on_validation(state.step, validation)
        if state.best_step is None:  # a finished run resumed, whose best weights no checkpoint held any more
            raise TrainingError(f"{run.best} is gone and no checkpoint holds the best weights any more",
                                "train the run again, or train it further: --resume --set train.max_steps=MORE")
        summary = write_summary(training, state, stopped_early)
        distributed.barrier()  # the best weights are written before any process goes on to read them
        return summary


def write_summary(training: Training, state: TrainState, stopped_early: bool) -> dict:
    model = training.unwrapped
    summary = {
        "steps": state.step, "planned_steps": training.total_steps, "budget": training.budget.to_json(),
        "best_step": state.best_step, "best_val_loss": state.best_val_loss, "best_val_metrics": state.best_val_metrics,
        "stopped_early": stopped_early, "skipped_steps": state.skipped_steps,
        "train_rows": len(training.plan.rows), "validation_rows": len(training.validation.rows),
        "train_tokens": state.tokens, "elapsed_s": round(state.elapsed_s, 2),
        "tokens_per_s": state.tokens / state.elapsed_s if state.elapsed_s else None,
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "total_params": sum(p.numel() for p in model.parameters()), "device": str(training.accelerator.device),
        "threads": torch.get_num_threads(), "dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
        "processes": distributed.world_size(), "global_batch": training.global_batch,
        "strategy": strategy_of(training.config) if distributed.world_size() > 1 else None,
        "truncation": vars(training.truncation), "data_files": state.data_files,
    }
    if distributed.is_main():
        write_json(training.run.train_summary, summary)
    return summary
