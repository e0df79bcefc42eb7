"""`tunesmith plan`: the plan of a run before it trains, assembled (`make_plan`), said in full (`render_plan`)
and in one line (`summary_line`, which `tunesmith run` logs first)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from tunesmith import distributed
from tunesmith.config.schema import RunConfig
from tunesmith.data.run_inputs import RunInputs
from tunesmith.errors import ConfigError
from tunesmith.models import load_tokenizer
from tunesmith.plan.counts import Counts, batch_plan, budget_of, count_run
from tunesmith.plan.estimates import (
    Estimate,
    disk,
    human_bytes,
    human_seconds,
    plus_minus,
    table_memory,
    table_time,
)
from tunesmith.plan.probe import build_training, measure_steps, probed_estimates
from tunesmith.plan.shape import ModelShape, model_shape
from tunesmith.run_dir import RunDir
from tunesmith.train.budget import Budget
from tunesmith.train.resume import newest_state
from tunesmith.train.rows import training_rows


@dataclass
class Plan:
    method: str
    model: str
    device: str
    counts: Counts
    shape: ModelShape
    time: Estimate
    memory: Estimate
    disk: dict[str, Estimate]
    price_per_hour: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def cost(self) -> float | None:
        return None if self.price_per_hour is None else self.time.value / 3600 * self.price_per_hour

    def to_json(self) -> dict:
        return {
            "method": self.method, "model": self.model, "device": self.device, "counts": self.counts.to_json(),
            "shape": self.shape.to_json(), "time": self.time.to_json(), "memory": self.memory.to_json(),
            "disk": {name: estimate.to_json() for name, estimate in self.disk.items()},
            "price_per_hour": self.price_per_hour, "cost": self.cost, "notes": self.notes,
        }


def make_plan(config: RunConfig, inputs: RunInputs, probe: bool = True, price_per_hour: float | None = None,
              started: Budget | None = None) -> Plan:
    """The plan of ``config``'s training on ``inputs``. ``probe`` loads the model and measures a few steps
    (`tunesmith.plan.probe`); without it nothing but the tokenizer and the model's config.json is read.
    ``started``: the budget a resumed run started with (its `auto` choices stand, as in the recipe)."""
    if price_per_hour is not None and not price_per_hour >= 0:
        raise ConfigError("--price-per-hour", f"{price_per_hour} is not a price", "give a number of 0 or more")
    device = distributed.device()
    splits = inputs.splits
    notes = ["time is the training loop's (steps, validations); evaluation and export come after it"]
    if probe:
        training = build_training(config, inputs)
        plan, budget, validation_rows = training.plan, training.budget, training.validation.rows
        train_rows, tokenizer = plan.rows, training.tokenizer
    else:
        tokenizer = load_tokenizer(config.model)
        train_rows, validation_rows, _ = training_rows(config, splits, tokenizer)
        plan = batch_plan(config, train_rows, tokenizer.pad_token_id)
        budget = budget_of(config, train_rows, plan, started)
    counts = count_run(config, splits, train_rows, validation_rows, plan, budget)
    shape = model_shape(config, device)
    time_estimate = table_time(config, counts, shape, device)
    memory = table_memory(config, counts, shape, device)
    if probe:
        probed = probed_estimates(measure_steps(training, counts.longest_step), counts, config)
        time_estimate, memory = probed.time, probed.memory
        del training, probed
        if device.type == "cuda":
            torch.cuda.empty_cache()
    if config.train.val_metrics:
        notes.append("train.val_metrics scores answers at every validation: not in the time estimate")
    return Plan(method=config.method, model=config.model.name, device=str(device), counts=counts, shape=shape,
                time=time_estimate, memory=memory, disk=disk(config, shape), price_per_hour=price_per_hour,
                notes=notes)


def summary_line(plan: Plan) -> str:
    """The plan in one line."""
    c = plan.counts
    disk_total = plan.disk["checkpoints"].value
    line = (f"plan: {c.train_rows:,} training rows, {c.tokens_per_epoch:,} tokens/epoch, {c.steps:,} steps "
            f"({c.epochs:.3g} epochs); ~{human_seconds(plan.time.value)} {plus_minus(plan.time)} ({plan.time.how}), "
            f"peak memory ~{human_bytes(plan.memory.value)} {plus_minus(plan.memory)} ({plan.memory.how}), "
            f"checkpoints ~{human_bytes(disk_total)}")
    if plan.cost is not None:
        line += f", ~{plan.cost:.2f} at {plan.price_per_hour:g}/h"
    return line


def render_plan(plan: Plan) -> str:
    """The plan in full, as `tunesmith plan` prints it."""
    c, s = plan.counts, plan.shape
    lines = [
        f"model {plan.model} ({s.params:,} parameters; {plan.method}: {s.trainable:,} trainable) on {plan.device}",
        "rows: " + ", ".join(f"{name} {count:,}" for name, count in c.rows.items())
        + f" ({c.train_rows:,} training rows keep a supervised token)",
        f"tokens per epoch: {c.tokens_per_epoch:,} (validation: {c.validation_tokens:,})",
        f"steps: {c.steps:,} = {c.epochs:.3g} epochs x {c.steps_per_epoch:,} steps of {c.global_batch} rows "
        f"({c.budget})",
        f"longest step: {c.longest_step_tokens:,} padded tokens; largest micro-batch {c.longest_micro_batch[0]} x "
        f"{c.longest_micro_batch[1]} tokens",
        f"time: ~{human_seconds(plan.time.value)} {plus_minus(plan.time)} ({describe_how(plan.time)})",
        f"peak memory: ~{human_bytes(plan.memory.value)} {plus_minus(plan.memory)} of {plan.memory.detail['of']} "
        f"({describe_how(plan.memory)})",
    ]
    parts = plan.memory.detail.get("parts")
    if parts:
        lines.append("  " + ", ".join(f"{name} {human_bytes(size)}" for name, size in parts.items()))
    for name, estimate in plan.disk.items():
        lines.append(f"disk, {name}: ~{human_bytes(estimate.value)} {plus_minus(estimate)}"
                     + (f" ({estimate.detail['keep_checkpoints']} checkpoints of "
                        f"{human_bytes(estimate.detail['checkpoint'])} ({estimate.detail['kind']}) and best/)"
                        if name == "checkpoints" else ""))
    if plan.cost is not None:
        lines.append(f"cost: ~{plan.cost:.2f} at {plan.price_per_hour:g} per hour {plus_minus(plan.time)}")
    lines += [f"note: {note}" for note in plan.notes]
    return "\n".join(lines)


def describe_how(estimate: Estimate) -> str:
    if estimate.how == "measured" and "step_seconds" in estimate.detail:
        d = estimate.detail
        return (f"measured: {len(d['step_seconds'])} steps after a warm-up at the longest batch, "
                f"{d['padded_tokens_per_s']:,.0f} padded tokens/s on {d['device']}, {d['threads']} threads")
    if estimate.how == "measured":
        return "measured by the probe"
    if "source" in estimate.detail:
        return f"from the throughput table, {estimate.detail['source']}"
    return "computed from the parameter counts and the largest micro-batch, no model loaded"


def run_summary(config: RunConfig, run: RunDir, inputs: RunInputs, resume: bool = False) -> str:
    """The line `tunesmith run` logs before training: the plan without the probe (no model loaded; the rows come
    from the tokenized cache that training then reads). A resumed run keeps the budget it started with."""
    found = newest_state(run) if resume else None
    started = found[1].budget if found else None
    return summary_line(make_plan(config, inputs, probe=False, started=started))
