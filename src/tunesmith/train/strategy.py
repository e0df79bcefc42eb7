"""The `distributed:` strategy: accelerate's Accelerator for it, and state that does not depend on it.

DDP needs nothing from us beyond `Accelerator()`. FSDP and DeepSpeed shard weights and optimizer state across
processes, so a checkpoint is written from full (gathered) state: then it is one format whatever the strategy
and the number of processes, and a run checkpointed by 2 processes resumes on 1, or on 4. The optimizer state
goes through `torch.distributed.checkpoint.state_dict`, which names every entry by parameter name (not by
position), for a plain module, DDP and FSDP alike.
"""

from __future__ import annotations

import importlib.util
import os
from contextlib import AbstractContextManager, nullcontext

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

from tunesmith import distributed
from tunesmith.config.schema import RunConfig
from tunesmith.errors import ConfigError, RunError

_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


_LAUNCHER_STRATEGIES = {"ACCELERATE_USE_FSDP": "fsdp", "ACCELERATE_USE_DEEPSPEED": "deepspeed"}
"""What `accelerate launch` with a user's accelerate config file tells its processes (environment variables)."""


def strategy_of(config: RunConfig) -> str:
    """`distributed.strategy`, unless it is the default and the user's own `accelerate launch` config asks for
    FSDP or DeepSpeed: then accelerate builds that plugin from the user's settings, and tunesmith follows."""
    if config.distributed.strategy == "ddp":
        for variable, strategy in _LAUNCHER_STRATEGIES.items():
            if os.environ.get(variable, "").lower() == "true":
                return strategy
    return config.distributed.strategy


def sharded(config: RunConfig) -> bool:
    """Whether weights are split across processes (FSDP, DeepSpeed) rather than replicated (DDP, one process)."""
    return distributed.world_size() > 1 and strategy_of(config) != "ddp"


def check_strategy(config: RunConfig) -> None:
    """What `distributed.strategy` needs, checked before any model or data is loaded."""
    strategy = strategy_of(config)
    if strategy == "ddp":
        return
    if config.train.val_metrics and sharded(config):
        # Scoring answers (label likelihoods, generation) calls the model outside the wrapper's forward, where
        # sharded weights are not gathered; untested on multi-GPU machines, so refused rather than guessed at.
        raise ConfigError("train.val_metrics", f"{strategy} shards the weights across processes, and the task "
                          "metrics are computed on the whole model", "leave train.val_metrics empty (the "
                          "validation loss is still computed and evaluation scores the test split), or use "
                          "distributed.strategy: ddp")
    if strategy == "deepspeed":
        if importlib.util.find_spec("deepspeed") is None:
            raise ConfigError("distributed.strategy", "deepspeed is not installed",
                              "pip install deepspeed, or use distributed.strategy: fsdp or ddp")
        if config.train.on_nonfinite == "skip":
            raise ConfigError("train.on_nonfinite", "skip cannot work under deepspeed: its engine applies the "
                              "update inside the backward pass, before the step can be checked", "use stop, or fsdp")
    if not torch.cuda.is_available():
        raise ConfigError("distributed.strategy", f"{strategy} shards the model across GPUs, and this machine has "
                          "no CUDA GPU", "use distributed.strategy: ddp on CPU")


def accelerator_for(config: RunConfig) -> Accelerator:
    """The Accelerator of this process: DDP (or nothing, in one process) unless `distributed.strategy` shards."""
    cpu = not torch.cuda.is_available()
    if not sharded(config) or config.distributed.strategy == "ddp":  # DDP, or the user's accelerate config
        return Accelerator(cpu=cpu)
    settings = config.distributed
    if settings.strategy == "fsdp":
        from accelerate.utils import FullyShardedDataParallelPlugin

        plugin = FullyShardedDataParallelPlugin(
            fsdp_version=2, reshard_after_forward=True,  # full shard: weights gathered per layer, then freed
            auto_wrap_policy="transformer_based_wrap",  # each decoder layer (the model's `_no_split_modules`)
            state_dict_type="FULL_STATE_DICT", cpu_offload=settings.cpu_offload,
        )
        return Accelerator(cpu=cpu, fsdp_plugin=plugin)
    from accelerate.utils import DeepSpeedPlugin

    tc = config.train
    plugin = DeepSpeedPlugin(
        zero_stage=settings.zero_stage, gradient_accumulation_steps=tc.grad_accumulation,
        gradient_clipping=tc.max_grad_norm, zero3_save_16bit_model=True,
        offload_optimizer_device="cpu" if settings.cpu_offload else "none",
    )
    plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = tc.batch_size
    # The engine counts micro-batches itself: accelerate's `accumulate` tells it which one closes a step.
    return Accelerator(cpu=cpu, deepspeed_plugin=plugin, gradient_accumulation_steps=tc.grad_accumulation)


def micro_batch(training, last: bool) -> AbstractContextManager:
    """The context of one micro-batch's forward and backward: gradients are synchronized across processes after
    the step's last micro-batch only."""
    if training.accelerator.distributed_type == DistributedType.DEEPSPEED:
        return training.accelerator.accumulate(training.model)
    return nullcontext() if last else training.accelerator.no_sync(training.model)


def backward_scale(training) -> float:
    """What the loss is multiplied by before backward so that gradients are *sums* over the global batch (the
    caller divides by its supervised tokens): DDP and FSDP average over processes, and DeepSpeed's engine also
    divides each micro-batch by the number of micro-batches."""
    scale = float(distributed.world_size())
    if training.accelerator.distributed_type == DistributedType.DEEPSPEED:
        scale *= training.config.train.grad_accumulation
    return scale


def full_state(training, with_optimizer: bool) -> tuple[dict | None, dict | None]:
    """``(weights, optimizer state)`` to checkpoint; every process calls it (gathering sharded state is a
    collective). ``weights`` is None when the model is whole in every process (save it as it is); the optimizer
    state is keyed by parameter name, so it loads under any strategy and number of processes."""
    weights = None
    if sharded(training.config):
        gathered = training.accelerator.get_state_dict(training.model)  # of the SupervisedLoss module
        weights = {name.removeprefix("model."): tensor for name, tensor in (gathered or {}).items()}
    if not with_optimizer:
        return weights, None
    if strategy_of(training.config) == "deepspeed" and sharded(training.config):
        return weights, {}  # DeepSpeed's engine keeps its own optimizer partitions (see `load_optimizer_state`)
    return weights, get_optimizer_state_dict(training.model, raw_optimizer(training.optimizer), options=_FULL)


def load_optimizer_state(training, saved: dict) -> None:
    """Restore a checkpoint's optimizer state into this process's (possibly sharded) optimizer."""
    if not saved:
        raise RunError("this checkpoint holds the weights of a DeepSpeed run but not its optimizer's partitions, "
                       "so it cannot resume exactly", "start the run again, or train with distributed.strategy: "
                                                      "fsdp, whose checkpoints resume on any number of processes")
    optimizer = raw_optimizer(training.optimizer)
    if any(isinstance(key, int) for key in saved.get("state", {})):
        optimizer.load_state_dict(saved)  # keyed by position: written by tunesmith before checkpoints were portable
        return
    set_optimizer_state_dict(training.model, optimizer, saved, options=_FULL)


def raw_optimizer(optimizer) -> torch.optim.Optimizer:
    """The torch optimizer inside accelerate's wrapper."""
    return getattr(optimizer, "optimizer", optimizer)
