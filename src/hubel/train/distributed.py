"""Training on several processes, on PyTorch's own engine: torch.distributed process groups
(gloo on CPUs, NCCL on CUDA GPUs), DistributedDataParallel for the gradients, and torch's
elastic launcher to start the processes.

Two ways in:
- `launch(function, nproc, *args)` starts `nproc` processes on this machine, each running
  `function(*args)` inside the process group, and returns what process 0 returned
  (`hubel train ... --nproc N` is this, around hubel.runs.train);
- `torchrun --nnodes M --nproc-per-node N --rdzv-backend c10d --rdzv-endpoint HOST:PORT -m hubel
  train ...` starts them across machines; each one finds its place from the environment
  torchrun sets (RANK, WORLD_SIZE, MASTER_ADDR, ...).

Either way, `init()` joins the group (once per process) and `fit(..., distributed=True)` does
the rest: the data is sharded (hubel.data.shards), the metrics are summed over processes, only
process 0 prints and writes files.
"""

from __future__ import annotations

import contextlib
import datetime
import gc
import logging
import os
import signal
import socket
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

from hubel import errors
from hubel.errors import ConfigError, DistributedError, HubelError

__all__ = ["World", "cores", "current_world", "init", "launch", "leave"]

_JOIN_TIMEOUT = 300.0  # seconds a process waits for the others to join (HUBEL_JOIN_TIMEOUT overrides)


@dataclass(frozen=True)
class World:
    """Where this process stands: its rank among `size` processes, and among the `local_size`
    ones on its machine. A single process is World() (rank 0 of 1); its collectives do nothing."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def main(self) -> bool:
        """Whether this process prints and writes files (rank 0)."""
        return self.rank == 0

    def sum(self, tensor: Tensor) -> Tensor:
        """`tensor` summed over every process (in place, and returned)."""
        if self.size > 1:
            moved = tensor.to(_collective_device())
            dist.all_reduce(moved)
            if moved is not tensor:
                tensor.copy_(moved)
        return tensor

    def any(self, *flags: bool) -> list[bool]:
        """Each flag, true when it is true in any process: one collective for all of them."""
        if self.size == 1:
            return [bool(flag) for flag in flags]
        total = self.sum(torch.tensor([float(flag) for flag in flags], dtype=torch.float64))
        return [bool(value > 0) for value in total.tolist()]

    def broadcast(self, value: Any) -> Any:
        """Process 0's `value`, in every process (any picklable value)."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, device=_collective_device())
        return box[0]

    def gather(self, value: Any) -> list[Any]:
        """Every process's `value`, in rank order, in every process."""
        if self.size == 1:
            return [value]
        values: list[Any] = [None] * self.size
        dist.all_gather_object(values, value)
        return values

    def barrier(self) -> None:
        """Wait until every process is here."""
        if self.size > 1:
            dist.barrier()


def _collective_device() -> torch.device:
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def current_world() -> World:
    """This process's World: the process group's when one is running, else a single process."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    size = dist.get_world_size()
    return World(
        rank=dist.get_rank(),
        size=size,
        local_rank=int(os.environ.get("LOCAL_RANK", 0)),
        local_size=int(os.environ.get("LOCAL_WORLD_SIZE", size)),
    )


def init(timeout: float | None = None) -> World:
    """Join the process group the environment describes (torchrun and `launch` set RANK,
    WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK, LOCAL_WORLD_SIZE), once per process: gloo
    on CPUs, NCCL when there are CUDA GPUs (each process takes the GPU of its local rank). On
    CPUs each process gets an equal part of the machine's cores as its threads. Without those
    variables (a plain `python script.py`) this is a single process, World().

    timeout: seconds to wait for the other processes (default HUBEL_JOIN_TIMEOUT or 300).
    """
    if dist.is_available() and dist.is_initialized():
        return current_world()
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_available():
        raise DistributedError("this build of PyTorch has no torch.distributed; install one that has it.")
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise ConfigError(
            f"WORLD_SIZE={size} but {', '.join(missing)} not set: start the processes with torchrun, or with "
            f"hubel train --nproc N on one machine."
        )
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", 0))
    local_size = int(os.environ.get("LOCAL_WORLD_SIZE", size))
    timeout = float(os.environ.get("HUBEL_JOIN_TIMEOUT", _JOIN_TIMEOUT)) if timeout is None else timeout
    cuda = torch.cuda.is_available() and torch.cuda.device_count() >= local_size
    if cuda:
        torch.cuda.set_device(local_rank)
    else:  # N processes on one machine share its cores: no more threads than cores in all
        torch.set_num_threads(max(1, cores() // local_size))
    where = f"{os.environ['MASTER_ADDR']}:{os.environ['MASTER_PORT']}"
    try:
        dist.init_process_group("nccl" if cuda else "gloo", timeout=datetime.timedelta(seconds=timeout))
    except (RuntimeError, ValueError) as error:
        raise DistributedError(
            f"process {rank} of {size} could not join the others at {where} within {timeout:.0f} s "
            f"({str(error).strip().splitlines()[0]}). Start all {size} processes with the same rendezvous address, "
            f"check that it is reachable from every machine, or allow longer with HUBEL_JOIN_TIMEOUT."
        ) from None
    return current_world()


def leave() -> None:
    """Leave the process group, if this process is in one: before the process ends, so that its
    threads stop while the others can still be reached (left to the interpreter's exit, a process
    under torchrun was once aborted, "terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


# ----- launching processes on this machine -----------------------------------------------------


def _free_port(port: int | None) -> int:
    """`port` if nothing listens on it on this machine (else a clear error), or a free one."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port or 0))
        except OSError:
            raise ConfigError(
                f"port {port} on this machine is in use: pass another port, or none to have a free one chosen."
            ) from None
        return probe.getsockname()[1]


def _worker(function: Callable[..., Any], errors_dir: str, args: tuple[Any, ...]) -> Any:
    """One launched process: run `function`; a HubelError is written down for the launcher (which
    raises it again as the run's one error) before the process ends.

    The process is the launcher's own, so, as the `hubel` command does, its garbage collector
    leaves alone what exists when it starts and ends (its last pass at exit walked all of torch)."""
    gc.freeze()
    try:
        return function(*args)
    except HubelError as error:
        Path(errors_dir, f"{os.environ.get('RANK', '0')}.txt").write_text(f"{type(error).__name__}\n{error}")
        raise
    finally:
        leave()
        gc.freeze()


@contextlib.contextmanager
def _quiet_torch_logs() -> Iterator[None]:
    """torch's launcher logs every worker it stops; the one error that matters is raised instead."""
    loggers = [logging.getLogger(name) for name in ("torch.distributed", "torch.multiprocessing")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


@contextlib.contextmanager
def _ctrl_c_is_for_the_processes() -> Iterator[None]:
    """A Ctrl-C in the terminal reaches every process of the launch. The processes agree to stop
    at the same step and save a checkpoint (as fit does on one process); the launcher itself
    waits for them instead of killing them mid-step."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def launch(function: Callable[..., Any], nproc: int, *args: Any, port: int | None = None) -> Any:
    """Run `function(*args)` in `nproc` new processes on this machine, through torch's elastic
    launcher, and return process 0's result. `function` and `args` must be picklable (a
    module-level function). Inside, the processes find each other with `init()`.

    If a process raises a HubelError, that error is raised here. If one dies (killed, out of
    memory), the launcher stops the others and this raises DistributedError naming it; a run
    that checkpoints can then continue with resume=True.

    In a script, under `if __name__ == "__main__":` (each process imports the script's module):

        result = launch(hubel.runs.train, 2, "mnist")
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if not isinstance(nproc, int) or isinstance(nproc, bool) or nproc < 1:
        raise ConfigError(f"expected the number of processes to be a positive integer. Received: nproc={nproc!r}")
    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=uuid.uuid4().hex,
        rdzv_backend="c10d",
        rdzv_endpoint=f"127.0.0.1:{_free_port(port)}",
        max_restarts=0,  # a failed process ends the run; resume=True continues it
        monitor_interval=0.1,
        signals_to_handle="SIGTERM,SIGHUP,SIGQUIT",  # Ctrl-C: see _ctrl_c_is_for_the_processes
    )
    with (
        tempfile.TemporaryDirectory(prefix="hubel-launch-") as errors_dir,
        _quiet_torch_logs(),
        _ctrl_c_is_for_the_processes(),
    ):
        try:
            results = elastic_launch(config, _worker)(function, errors_dir, args)
        except ChildFailedError as failed:
            raised = sorted(Path(errors_dir).glob("*.txt"), key=lambda path: int(path.stem))
            if raised:  # a process raised a HubelError: that error is the run's
                kind, message = raised[0].read_text().split("\n", 1)
                raise getattr(errors, kind, HubelError)(message) from None
            rank, failure = failed.get_first_failure()
            how = (
                f"was killed by {signal.Signals(-failure.exitcode).name}"
                if failure.exitcode < 0
                else f"exited with code {failure.exitcode}"
            )
            raise DistributedError(
                f"process {rank} of {nproc} {how}; the others were stopped. A run that saved a checkpoint "
                f"continues with resume=True (hubel train ... --resume)."
            ) from None
    return results[0]
