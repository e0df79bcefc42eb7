"""The probe: a few real optimizer steps of the run on this machine, timed and measured, to extrapolate from.

It builds the run's components with the recipe's own `set_up` (the model, its adapters, the optimizer and
accelerate, exactly as training builds them) in a scratch run folder, then takes one untimed warm-up step and
`PROBE_STEPS` timed ones on the run's longest batch (most padded tokens: the peak of memory, and the batch least
flattered by fixed per-step costs). The measured seconds per padded token times the run's padded tokens is the
time estimate; the peak memory is what the process held (CPU: its peak RSS) or torch allocated (GPU) meanwhile.
The steps change the scratch model only: nothing of the run is written.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from dataclasses import dataclass

import torch

from tunesmith.config.schema import RunConfig
from tunesmith.data.run_inputs import RunInputs
from tunesmith.plan.counts import Counts
from tunesmith.plan.estimates import Estimate, training_seconds
from tunesmith.run_dir import RunDir
from tunesmith.train.recipe import Training, optimizer_step, set_up
from tunesmith.train.state import TrainState

PROBE_STEPS = 3
MEASURED_FLOOR = 0.15
"""The least uncertainty a probed time is given: the probe's steps run on one batch, while a run's batches vary
in shape, and validation and checkpoints are extrapolated, not timed."""
MEMORY_UNCERTAINTY = 0.15
"""A run's peak may exceed the probe's: writing a checkpoint gathers the weights and the optimizer state."""


@dataclass
class Probed:
    training: Training
    """The components the probe built (its `plan` and `budget` are the run's)."""
    step_seconds: list[float]
    time: Estimate | None = None
    memory: Estimate | None = None


def peak_rss_bytes() -> int:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def build_training(config: RunConfig, inputs: RunInputs) -> Training:
    """The run's training components, in a scratch folder that is removed (nothing reads it: no resume)."""
    with tempfile.TemporaryDirectory(prefix="tunesmith-plan-") as scratch:
        training, _ = set_up(config, RunDir(scratch), inputs)
    return training


def measure_steps(training: Training, longest_step: int) -> Probed:
    """Warm up, then time `PROBE_STEPS` optimizer steps on the first epoch's batch ``longest_step``."""
    device = training.accelerator.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    batch = training.plan.epoch(0)[longest_step]
    state = TrainState(budget=training.budget)
    optimizer_step(training, batch, state)  # warm-up: allocations, kernel choices, AdamW's state
    seconds = []
    for _ in range(PROBE_STEPS):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        optimizer_step(training, batch, state)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds.append(time.perf_counter() - started)
    return Probed(training, seconds)


def probed_estimates(probed: Probed, counts: Counts, config: RunConfig) -> Probed:
    """The time and memory estimates from the probe's measurements."""
    seconds = statistics.median(probed.step_seconds)
    spread = (max(probed.step_seconds) - min(probed.step_seconds)) / seconds if seconds else 0.0
    per_token = seconds / counts.longest_step_tokens
    device = probed.training.accelerator.device
    probed.time = Estimate(
        training_seconds(counts, per_token), "s", "measured", max(MEASURED_FLOOR, spread),
        {"step_seconds": [round(s, 4) for s in probed.step_seconds], "tokens_per_step": counts.longest_step_tokens,
         "padded_tokens_per_s": counts.longest_step_tokens / seconds, "device": str(device),
         "threads": torch.get_num_threads()})
    if device.type == "cuda":
        peak, what = torch.cuda.max_memory_allocated(device), "GPU memory allocated by torch (max_memory_allocated)"
    else:
        peak, what = peak_rss_bytes(), "CPU resident memory (peak RSS of this process)"
    probed.memory = Estimate(peak, "bytes", "measured", MEMORY_UNCERTAINTY,
                             {"of": what, "micro_batch": list(counts.longest_micro_batch)})
    return probed
