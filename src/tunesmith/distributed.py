"""Several processes, one job: who this process is, the few collectives tunesmith needs, and the launcher.

A job of N processes is N copies of the same command, started by torchrun (the launcher `accelerate launch`
runs for multi-GPU jobs) with ``RANK``/``WORLD_SIZE``/``MASTER_ADDR`` in their environment; accelerate's
`PartialState` joins them into one process group (gloo on CPU, NCCL on GPU). Everything here is a no-op in one
process, so the library reads the same in both cases. The rules every stage follows:

- rank 0 alone writes the run folder (and holds its lock); the others compute and wait at `barrier`;
- a computation over rows is sharded (`shard`: rank r takes rows r, r+N, ...) and put back in row order
  (`gather_shards`), so its result is the one of a single process;
- a failure of any process ends the whole job: torchrun stops the others (no rank waits for a dead peer).

torch is imported inside the functions: the CLI imports this module, and `tunesmith --help` should not load
torch.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

from tunesmith.errors import RunError

if TYPE_CHECKING:
    import torch

log = logging.getLogger("tunesmith")

T = TypeVar("T")
DEFAULT_TIMEOUT_MINUTES = 30


def world_size() -> int:
    """Processes in the job (1 when not launched by torchrun / accelerate)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main() -> bool:
    """Whether this process writes the run folder (rank 0 of the job)."""
    return rank() == 0


def processes_per_machine() -> int:
    return int(os.environ.get("LOCAL_WORLD_SIZE", "1"))


def start(timeout_minutes: int = DEFAULT_TIMEOUT_MINUTES):
    """Join the job's process group (once: later calls return the same state, so the entry points, which know
    `distributed.timeout_minutes`, call it before any collective does). A collective that waits longer than
    ``timeout_minutes`` for a peer fails instead of hanging (a peer that dies is caught sooner, by torchrun)."""
    import torch
    from accelerate import PartialState

    if world_size() == 1:
        return PartialState(cpu=not torch.cuda.is_available())
    return PartialState(cpu=not torch.cuda.is_available(), timeout=datetime.timedelta(minutes=timeout_minutes))


def device() -> torch.device:
    """This process's device: its own GPU under a multi-GPU launch, else the GPU if any, else the CPU."""
    import torch

    if world_size() > 1:
        return start().device
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def barrier() -> None:
    import torch

    if world_size() > 1:
        start()
        torch.distributed.barrier()


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block before the others do: it fills a cache (tokenized rows, a converted model) that
    the others then read instead of all writing it at once."""
    if not is_main():
        barrier()
    yield
    if is_main():
        barrier()


def broadcast(value: T) -> T:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    import torch

    if world_size() == 1:
        return value
    start()
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sums over every rank, in float64 (token counts and loss sums stay exact)."""
    import torch

    if world_size() == 1:
        return [float(value) for value in values]
    tensor = torch.tensor([float(value) for value in values], dtype=torch.float64, device=start().device)
    torch.distributed.all_reduce(tensor)
    return tensor.tolist()


def shard(items: Sequence[T]) -> list[T]:
    """This rank's items: every N-th from its rank (strided, so each rank gets rows from all over a length-sorted
    or file-ordered list)."""
    return list(items[rank()::world_size()])


def gather_shards(mine: Sequence[T], total: int) -> list[T]:
    """Every rank's `shard` results put back in the original order, on every rank."""
    import torch

    if world_size() == 1:
        return list(mine)
    start()
    parts: list = [None] * world_size()
    torch.distributed.all_gather_object(parts, list(mine))
    ordered: list = [None] * total
    for owner, part in enumerate(parts):
        ordered[owner::world_size()] = part
    return ordered


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (for the job's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def lost_a_peer(error: BaseException) -> bool:
    """Whether ``error`` is a collective failing because another process of the job died (torchrun then stops
    this one too, and reports which died first)."""
    import torch

    if world_size() == 1:
        return False
    message = str(error)
    return isinstance(error, torch.distributed.DistError) or (
        isinstance(error, RuntimeError) and ("closed by peer" in message or "reset by peer" in message))


class ProcessFailed(RunError):
    """A process of a multi-process job failed; torchrun stopped the others."""

    exit_code = 1


def launch(command: Sequence[str], processes: int) -> None:
    """Run ``python -m tunesmith COMMAND...`` as ``processes`` local processes, through accelerate's multi-GPU
    launcher (torchrun underneath; on a machine without GPUs, accelerate runs them on CPU over gloo).

    Why not `accelerate launch` as a subprocess: its CLI reads the user's default accelerate config file, which
    is meant for their own jobs and could turn this run into another kind of job; called from here, tunesmith
    decides (the `distributed:` config section does, in each process). A process that fails stops the whole
    job within seconds (torchrun's monitor), and the error says which one and how to go on.
    """
    from accelerate.commands.launch import launch_command_parser, multi_gpu_launcher
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    if world_size() > 1:
        raise RunError("--processes is for starting a job; this process is already one of "
                       f"{world_size()} launched processes", "drop --processes under accelerate launch / torchrun")
    threads = max(1, len(os.sched_getaffinity(0)) // processes)
    args = launch_command_parser().parse_args([
        "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1", "--mixed_precision", "no",
        "--dynamo_backend", "no", "--main_process_ip", "127.0.0.1", "--main_process_port", str(free_port()),
        "--monitor_interval", "0.5", "--num_cpu_threads_per_process", str(threads), "-m", "tunesmith", *command,
    ])
    args.debug = False
    # torchrun logs each stopped process at WARNING/ERROR; the one error line below says it all.
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)
    try:
        multi_gpu_launcher(args)
    except ChildFailedError as failure:
        first_rank, first = min(failure.failures.items(), key=lambda item: item[1].timestamp)
        how = (f"was killed by signal {-first.exitcode}" if first.exitcode < 0 else
               f"exited with code {first.exitcode}")
        raise ProcessFailed(
            f"process {first_rank} of {processes} {how}; the others were stopped",
            "the run folder keeps its last checkpoint: continue with --resume (with any number of processes)",
        ) from None
