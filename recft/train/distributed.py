"""Distributed: one process's place in a torchrun job (rank, world, gloo/nccl group).

recft never starts its own distribution protocol: the processes are started by
``torchrun`` (or ``recft ... --nproc N``, which uses torchrun's launcher API), which sets
``RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR`` and ``MASTER_PORT``; this
module joins the process group they describe and offers the few collectives training
needs besides torchrec's own (epoch statistics, rank-0 decisions, dense gradients).

Every decision that changes what the ranks do next (stop early, save a checkpoint, skip a
batch) is taken from values every rank shares, never from one rank's clock or loss alone:
a rank that took another branch would wait forever in a collective the others never join.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from recft.errors import RecftError

T = TypeVar("T")

# seconds a collective waits for a peer before failing: a rank that died leaves the others
# here, and gloo reports a closed connection at once, so this bounds only a hung peer
DEFAULT_TIMEOUT_S = 300.0
TIMEOUT_ENV = "RECFT_DIST_TIMEOUT"


class DistributedError(RecftError):
    """The job cannot run as launched (bad environment, process group, world size)."""


def launched_by_torchrun() -> bool:
    """Whether this process is a worker of a torchrun job of more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "RANK" in os.environ


@dataclass
class Distributed:
    """This process's rank in a job of ``world_size`` processes, and the group joining them.

    Example::

        context = Distributed.from_environment()      # under torchrun
        model, history = pretrain(train, distributed=context)
        context.close()
    """

    rank: int
    world_size: int
    local_world_size: int
    group: Any  # torch.distributed.ProcessGroup
    backend: str = "gloo"
    plan: dict[str, Any] | None = None  # the last sharding plan (recft.train.sharding)

    @classmethod
    def from_environment(cls, backend: str | None = None,
                         timeout_s: float | None = None) -> Distributed:
        """Join the process group torchrun described in the environment.

        Args:
            backend: default ``gloo``: recft's sharded training runs its tables and towers
                on CPU (``nccl`` needs the GPU device plumbing README 'Scale-out' lists as
                not done).
            timeout_s: how long a collective waits for a peer ($RECFT_DIST_TIMEOUT, else 300).
        """
        missing = [k for k in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
                   if k not in os.environ]
        if missing:
            raise DistributedError(f"not started by torchrun: {', '.join(missing)} unset; run "
                                   "`torchrun --nproc-per-node N -m recft ...` or pass --nproc N")
        backend = backend or "gloo"
        timeout = timeout_s if timeout_s is not None else float(
            os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S))
        if not dist.is_initialized():
            dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout))
        world = dist.get_world_size()
        local = int(os.environ.get("LOCAL_WORLD_SIZE", world))
        return cls(dist.get_rank(), world, local, dist.group.WORLD, backend)

    @property
    def is_main(self) -> bool:
        """Rank 0: the one that prints, validates and writes outputs."""
        return self.rank == 0

    def record(self) -> dict[str, Any]:
        """What ``training.json`` keeps about the job: ranks, backend, sharding plan."""
        return {"world_size": self.world_size, "backend": self.backend,
                "batch_size": "per rank (global batch = world_size x batch_size)",
                "in_batch_negatives": "per rank", "sharding": self.plan or {}}

    def close(self) -> None:
        if dist.is_initialized():
            dist.destroy_process_group()

    def seed_rank(self, seed: int) -> None:
        """Seed torch's generator with ``(seed, rank)``: dropout masks differ between ranks
        (with one seed, rank ``r``'s example ``i`` would share rank 0's example ``i``'s mask)."""
        torch.manual_seed(seed * 1_000_003 + self.rank + 1)

    # ------------------------------------------------------------------ collectives
    def barrier(self) -> None:
        dist.barrier(group=self.group)

    def broadcast_object(self, value: T, src: int = 0) -> T:
        """``value`` of rank ``src`` on every rank (picklable Python objects)."""
        holder = [value if self.rank == src else None]
        dist.broadcast_object_list(holder, src=src, group=self.group)
        return holder[0]  # type: ignore[return-value]

    def on_main(self, compute: Callable[[], T]) -> T:
        """``compute()`` on rank 0 only, its result (or its error) on every rank.

        An error raised on rank 0 is raised on every rank, so no rank is left waiting in a
        collective that the others will never reach.
        """
        result: Any = None
        failure: BaseException | None = None
        if self.is_main:
            try:
                result = compute()
            except Exception as error:  # re-raised below, on every rank
                failure = error if _picklable(error) else RecftError(f"{error!r}")
        result, failure = self.broadcast_object((result, failure))
        if failure is not None:
            raise failure
        return result

    def sum(self, values: Iterable[float]) -> list[float]:
        """Element-wise sum over ranks (float64)."""
        tensor = torch.tensor(list(values), dtype=torch.float64)
        dist.all_reduce(tensor, group=self.group)
        return tensor.tolist()

    def any(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any rank."""
        return self.sum([1.0 if flag else 0.0])[0] > 0

    def all_gather_tensors(self, tensor: torch.Tensor) -> list[torch.Tensor]:
        """Every rank's 1-D ``tensor`` (lengths may differ), in rank order."""
        length = torch.tensor([len(tensor)], dtype=torch.int64)
        lengths = [torch.zeros_like(length) for _ in range(self.world_size)]
        dist.all_gather(lengths, length, group=self.group)
        longest = int(max(int(n) for n in lengths))
        padded = torch.zeros(longest, dtype=tensor.dtype)
        padded[:len(tensor)] = tensor
        gathered = [torch.zeros_like(padded) for _ in range(self.world_size)]
        dist.all_gather(gathered, padded, group=self.group)
        return [g[:int(n)] for g, n in zip(gathered, lengths)]

    @torch.no_grad()
    def broadcast_parameters(self, parameters: Iterable[torch.Tensor]) -> None:
        """Rank 0's values of replicated parameters on every rank (what DDP does at start)."""
        tensors = [p.detach() for p in parameters]
        if not tensors:
            return
        flat = torch.cat([t.reshape(-1) for t in tensors])
        dist.broadcast(flat, src=0, group=self.group)
        offset = 0
        for tensor in tensors:
            tensor.copy_(flat[offset:offset + tensor.numel()].view_as(tensor))
            offset += tensor.numel()

    @torch.no_grad()
    def average_gradients(self, parameters: Iterable[nn.Parameter]) -> None:
        """Average the gradients of replicated parameters over ranks, in one all-reduce.

        The same sum DDP computes; a parameter without a gradient on every rank keeps none
        (so an optimizer skips it, as it would in one process).
        """
        params = list(parameters)
        if not params:
            return
        pieces = []
        for param in params:
            grad = param.grad
            pieces.append(grad.reshape(-1) if grad is not None
                          else torch.zeros(param.numel(), dtype=param.dtype))
        flags = torch.tensor([p.grad is not None for p in params], dtype=pieces[0].dtype)
        flat = torch.cat([*pieces, flags])
        dist.all_reduce(flat, group=self.group)
        flat /= self.world_size
        had_grad = flat[sum(p.numel() for p in params):]
        offset = 0
        for index, param in enumerate(params):
            size = param.numel()
            if had_grad[index] > 0:
                averaged = flat[offset:offset + size].view_as(param)
                if param.grad is None:
                    param.grad = averaged.clone()
                else:
                    param.grad.copy_(averaged)
            offset += size


def _picklable(value: object) -> bool:
    import pickle

    try:
        pickle.loads(pickle.dumps(value))
    except Exception:
        return False
    return True


def threads_per_rank(local_world_size: int) -> int:
    """Torch threads for each of ``local_world_size`` processes sharing this machine."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // max(1, local_world_size))


__all__ = ["DEFAULT_TIMEOUT_S", "Distributed", "DistributedError", "launched_by_torchrun",
           "threads_per_rank"]
