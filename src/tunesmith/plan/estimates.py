"""Estimates from counts and the model's shape alone (no model loaded): peak memory, disk, and, with
`--no-probe`, the training time from a stated throughput per device kind.

Every estimate carries how it was obtained and its uncertainty (a relative half-width: 0.5 means the truth is
expected between half and one and a half times the figure). Those of `tunesmith.plan.probe`, measured on this
machine, replace the time and memory figures here when the plan probes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from tunesmith import distributed
from tunesmith.config.schema import RunConfig
from tunesmith.config.vocabulary import DEFAULT_GGUF_QUANT, uses_adapter
from tunesmith.plan.counts import Counts
from tunesmith.plan.shape import ModelShape
from tunesmith.threads import resolve_threads

GGUF_BYTES_PER_WEIGHT = {"f16": 2.0, "q8_0": 34 / 32}
"""GGUF block layouts: f16 is 2 bytes a weight; a Q8_0 block is 32 int8 weights and one f16 scale."""

CPU_RUNTIME_BYTES = 600 * 2**20
"""What a training process holds on the CPU before any weight: Python, torch, transformers, peft, accelerate and
the tokenizer imported (about 0.5-0.7 GiB, read from the peak RSS of tiny-model runs)."""

ACTIVATION_ELEMENTS_PER_TOKEN = {"hidden": 10, "intermediate": 4}
"""Activations a Llama-style decoder layer keeps for the backward pass, per token: about 10 hidden-sized vectors
(the norms' inputs and outputs, q/k/v, the attention output and its projection, the residuals) and 4
intermediate-sized ones (gate, up, the activation and their product). With fused attention (sdpa) no
sequence x sequence score matrix is kept."""

THROUGHPUT = {
    # device kind: (effective FLOP/s of training, where the figure comes from)
    "cpu": (64e9, "per CPU thread: the demo trained SmolLM2-135M LoRA at 218 real tokens/s on 2 threads "
                  "(BENCHMARKS.md, 'The demo'), i.e. 2 x 64 GFLOP/s at 4N + 6N_adapter FLOP a token"),
    "H100": (0.35 * 989.4e12, "35% of the H100's dense bf16 peak (989.4 TFLOP/s), the MFU class of tuned "
                              "single-GPU SFT; not yet measured with tunesmith (BENCHMARKS.md, 'GPU')"),
    "H200": (0.35 * 989.4e12, "35% of the H200's dense bf16 peak (989.4 TFLOP/s, as the H100's); not yet measured "
                              "with tunesmith"),
    "A100": (0.35 * 312e12, "35% of the A100's dense bf16 peak (312 TFLOP/s); not measured with tunesmith"),
    "cuda": (0.25 * 100e12, "an unknown CUDA GPU: 25% of 100 TFLOP/s, a guess; probe instead"),
}
"""The stated training throughput per device kind that `tunesmith plan --no-probe` divides the work by. The one
place these figures live."""

TABLE_TIME_UNCERTAINTY = 1.0
"""A throughput table cannot know this machine's load, kernels or memory bandwidth: within a factor of two."""
TABLE_MEMORY_UNCERTAINTY = 0.4
SIZE_UNCERTAINTY = 0.05
"""File sizes follow from the parameter counts; headers, tokenizer files and the model card add a little."""


@dataclass(frozen=True)
class Estimate:
    value: float
    unit: str
    how: str
    """``measured`` (by the probe, on this machine) or ``table``/``computed`` (from counts and stated figures)."""
    uncertainty: float
    """Relative half-width, e.g. 0.3 for ±30%."""
    detail: dict

    def to_json(self) -> dict:
        return asdict(self)


def flops_per_token(shape: ModelShape, method: str) -> float:
    """Training FLOP a token, the count BENCHMARKS.md ('GPU') uses: 6N for full fine-tuning; 4N + 6N_adapter for
    adapters (frozen weights get input gradients only), N without the embeddings' lookup counted; `dpo` adds the
    reference policy's forward pass (2N)."""
    flops = 6 * shape.params if not uses_adapter(method) else 4 * shape.params + 6 * shape.trainable
    return flops + 2 * shape.params if method == "dpo" else flops


def device_kind(device: torch.device) -> str:
    if device.type != "cuda":
        return "cpu"
    name = torch.cuda.get_device_name(device)
    return next((kind for kind in THROUGHPUT if kind != "cpu" and kind in name), "cuda")


def cpu_threads(config: RunConfig) -> int:
    """The threads a run started now would use (the recipe's rule, `tunesmith.threads.resolve_threads`)."""
    return resolve_threads(config.train.threads, distributed.processes_per_machine())


def table_time(config: RunConfig, counts: Counts, shape: ModelShape, device: torch.device) -> Estimate:
    """Training seconds from the stated throughput of this device kind (`THROUGHPUT`): padded tokens of every
    step plus a third of that rate for the validations' forward passes."""
    kind = device_kind(device)
    rate, source = THROUGHPUT[kind]
    if kind == "cpu":
        rate *= cpu_threads(config)
    seconds_per_token = flops_per_token(shape, config.method) / rate
    seconds = training_seconds(counts, seconds_per_token)
    return Estimate(seconds, "s", "table", TABLE_TIME_UNCERTAINTY,
                    {"device": kind, "flop_per_token": flops_per_token(shape, config.method),
                     "effective_flop_per_s": rate, "source": source})


def validations(counts: Counts) -> int:
    if not counts.validation_tokens:
        return 0
    return counts.steps // counts.eval_every + (counts.steps % counts.eval_every != 0)


def training_seconds(counts: Counts, seconds_per_token: float) -> float:
    """The training loop's seconds at ``seconds_per_token`` of a training step's padded tokens: every step, and
    every validation (a forward pass, about a third of a training step's work per token)."""
    steps = counts.steps * counts.padded_tokens_per_step * seconds_per_token
    return steps + validations(counts) * counts.validation_tokens * seconds_per_token / 3


def memory_parts(config: RunConfig, counts: Counts, shape: ModelShape, device: torch.device) -> dict[str, int]:
    """Bytes of the training peak by part: weights, gradients, AdamW's two moments, activations of the largest
    micro-batch (with gradient checkpointing, each layer's input and one layer's activations), and on the CPU the
    runtime itself."""
    rows, width = counts.longest_micro_batch
    tokens = rows * width
    act_bytes = 4 if device.type == "cpu" and config.model.dtype in ("auto", "float32") else 2
    per_layer = (ACTIVATION_ELEMENTS_PER_TOKEN["hidden"] * shape.hidden
                 + ACTIVATION_ELEMENTS_PER_TOKEN["intermediate"] * shape.intermediate) * tokens * act_bytes
    if config.train.gradient_checkpointing:
        activations = shape.layers * shape.hidden * tokens * act_bytes + per_layer
    else:
        activations = shape.layers * per_layer
    supervised_head = min(tokens, 2048) * shape.vocab * 4 * 3  # fp32 logits, their softmax and gradient, by chunk
    parts = {
        "weights": int(shape.params * shape.weight_bytes),
        "gradients": shape.trainable * shape.trainable_bytes,
        "optimizer": 2 * shape.trainable * shape.trainable_bytes,
        "activations": int(activations + supervised_head),
    }
    if device.type == "cpu":
        parts["runtime"] = CPU_RUNTIME_BYTES
    return parts


def table_memory(config: RunConfig, counts: Counts, shape: ModelShape, device: torch.device) -> Estimate:
    parts = memory_parts(config, counts, shape, device)
    what = "CPU resident memory (RSS)" if device.type == "cpu" else "GPU memory allocated by torch"
    return Estimate(sum(parts.values()), "bytes", "computed", TABLE_MEMORY_UNCERTAINTY,
                    {"of": what, "parts": parts, "micro_batch": list(counts.longest_micro_batch)})


def disk(config: RunConfig, shape: ModelShape) -> dict[str, Estimate]:
    """Bytes on disk: the checkpoints training keeps (`train.keep_checkpoints` step folders of weights and AdamW
    state, and `best/`), and the exports: `adapter/` (adapter methods), `merged/` (fp32 when an adapter is
    merged, as export merges it; the trained dtype for a full fine-tune) and a GGUF (`tunesmith export --format
    gguf`, the default quantization)."""
    adapter = uses_adapter(config.method)
    trained_weights = shape.trainable * shape.trainable_bytes if adapter else int(shape.params * shape.weight_bytes)
    checkpoint = trained_weights + 2 * shape.trainable * shape.trainable_bytes
    keep = config.train.keep_checkpoints
    found = {
        "checkpoints": Estimate(keep * checkpoint + trained_weights, "bytes", "computed", SIZE_UNCERTAINTY,
                                {"keep_checkpoints": keep, "checkpoint": checkpoint, "best": trained_weights,
                                 "kind": "adapter" if adapter else "full weights"}),
        "merged": Estimate(shape.params * (4 if adapter else shape.weight_bytes), "bytes", "computed",
                           SIZE_UNCERTAINTY, {}),
        "gguf": Estimate(shape.params * GGUF_BYTES_PER_WEIGHT[DEFAULT_GGUF_QUANT], "bytes", "computed",
                         SIZE_UNCERTAINTY, {"quant": DEFAULT_GGUF_QUANT}),
    }
    if adapter:
        found["adapter"] = Estimate(trained_weights, "bytes", "computed", SIZE_UNCERTAINTY, {})
    return found


def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def human_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def plus_minus(estimate: Estimate) -> str:
    return f"±{math.ceil(estimate.uncertainty * 100)}%"
