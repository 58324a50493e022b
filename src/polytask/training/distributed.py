"""Data-parallel training on ``torch.distributed``: one model, several processes, each holding
a shard of every global batch (``torchrun --nproc-per-node N -m polytask fit ...``).

Exactness for the global batch is the rule: with the same seed, N processes with batch size
``b`` train the same model as one process with batch size ``N b`` (up to floating-point
rounding), for every balancer.

- *Batches*: every process draws the same seeded permutation; each global batch of ``N b``
  rows is split into N consecutive shards (:meth:`DataParallel.shard`), shard ``r`` on rank ``r``.
- *Losses*: ``L_t = sum_i m_i l_i / max(1, sum_i m_i)`` over the global batch; the numerators
  and label counts are added over processes (2T floats) and the loss vector a balancer sees
  has the global values with gradients through this process's rows only
  (:meth:`DataParallel.losses`), so loss-weighting methods compute the same weights, and keep the
  same state, on every process.
- *Gradients*: after the balancer each process holds its contribution; the parameters'
  gradients are added over processes (P floats, :meth:`DataParallel.reduce_gradients`) before
  the regularisers, clipping and the optimizer step. Gradient-aggregation methods add what
  they need over processes themselves through the :class:`~polytask.balancers.base.Reducer`
  in the step context (see :mod:`polytask.balancers.aggregation.collective`).
- *Validation*: each process predicts its shard of the validation rows and the outputs are
  gathered, so losses, metrics and early-stopping decisions are the same everywhere.
- *Randomness*: dropout draws from a stream seeded by (seed, epoch, rank) at each epoch start,
  so a resumed run equals the uninterrupted one (its masks are not those of one process).
  Batch normalization uses each process's shard statistics (as without ``SyncBatchNorm``).

The process group is ``torch.distributed``'s: initialised from torchrun's environment
(``WORLD_SIZE``, ``RANK``, ``MASTER_ADDR``...) on first use, or by the caller beforehand;
``gloo`` for CPU training, ``nccl`` for CUDA.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.distributed as dist
from torch import nn

from polytask.balancers.base import Reducer
from polytask.errors import PolytaskError

#: The backend for each device type.
BACKENDS = {"cpu": "gloo", "cuda": "nccl"}


def _environment_world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        raise PolytaskError(f"WORLD_SIZE must be an integer, got '{os.environ['WORLD_SIZE']}'") from None


def process_device(device: torch.device) -> torch.device:
    """Under torchrun, a bare ``cuda`` means this process's own GPU (``LOCAL_RANK``)."""
    if device.type == "cuda" and device.index is None and _environment_world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def world_size() -> int:
    """Processes in this run (1 without a process group)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return _environment_world_size()


def is_main_process() -> bool:
    """Whether this process writes files and prints (rank 0, or the only process)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def join(device: torch.device) -> "DataParallel | None":
    """The data-parallel group this process trains in, or None for a single process; the
    process group is initialised from torchrun's environment when nobody has done so."""
    if not dist.is_available():
        return None
    if not dist.is_initialized():
        if _environment_world_size() <= 1:
            return None
        backend = BACKENDS.get(device.type)
        if backend is None:
            raise PolytaskError(f"data-parallel training runs on cpu or cuda, not '{device.type}'")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend)
    if dist.get_world_size() == 1:
        return None
    backend = dist.get_backend()
    if device.type == "cpu" and backend == "nccl":
        raise PolytaskError("the process group uses nccl, which cannot train on the cpu: use --device cuda")
    return DataParallel(device)


def close() -> None:
    """Destroy the process group, if any (at the end of a command)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class DataParallel(Reducer):
    """The collective operations of one training process (see the module docstring)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.world_size = dist.get_world_size()
        self.rank = dist.get_rank()

    # -- the Reducer interface ------------------------------------------------------------------
    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.detach().clone().contiguous()
        dist.all_reduce(out)
        return out

    def gather(self, tensor: torch.Tensor, dim: int = 0) -> tuple[torch.Tensor, slice]:
        tensor = tensor.detach()
        size = torch.tensor([tensor.shape[dim]], device=tensor.device)
        sizes = [torch.zeros_like(size) for _ in range(self.world_size)]
        dist.all_gather(sizes, size)
        counts = [int(s) for s in sizes]
        longest = max(counts)
        if tensor.shape[dim] < longest:
            pad = list(tensor.shape)
            pad[dim] = longest - tensor.shape[dim]
            tensor = torch.cat([tensor, tensor.new_zeros(pad)], dim)
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        dist.all_gather(parts, tensor.contiguous())
        full = torch.cat([p.narrow(dim, 0, c) for p, c in zip(parts, counts)], dim)
        start = sum(counts[: self.rank])
        return full, slice(start, start + counts[self.rank])

    # -- what the trainer asks ------------------------------------------------------------------
    def shard(self, rows: torch.Tensor) -> torch.Tensor:
        """This process's consecutive share of a global batch's row indices."""
        return torch.tensor_split(rows, self.world_size)[self.rank]

    def losses(self, sums: torch.Tensor, counts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """From this shard's (T,) loss sums (with graph) and label counts: the loss vector
        with the global batch's values and this shard's gradients, the global values, and the
        global (T,) label counts (one collective operation for all three)."""
        n = sums.shape[0]
        totals = self.sum(torch.cat([sums.detach(), counts.detach().to(sums.dtype)]))
        scale = totals[n:].clamp(min=1.0)
        local = sums / scale
        values = totals[:n] / scale
        return local + (values - local).detach(), values, totals[n:]

    def reduce_gradients(self, params: Sequence[nn.Parameter]) -> None:
        """Add the parameters' gradients over processes, in place (a parameter with a gradient
        on some process gets zeros where it has none, so every process steps the same ones)."""
        present = torch.tensor([float(p.grad is not None) for p in params], device=self.device)
        dist.all_reduce(present, op=dist.ReduceOp.MAX)
        for p, flag in zip(params, present.tolist()):
            if flag and p.grad is None:
                p.grad = torch.zeros_like(p)
        grads = [p.grad for p in params if p.grad is not None]
        if not grads:
            return
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()

    def broadcast(self, module: nn.Module) -> None:
        """Rank 0's parameters and buffers on every process (one starting point)."""
        with torch.no_grad():
            for t in [*module.parameters(), *module.buffers()]:
                dist.broadcast(t.data, 0)

    def seed_epoch(self, seed: int, epoch: int) -> None:
        """Seed this process's dropout stream for ``epoch`` (resumable, distinct per rank)."""
        torch.manual_seed((int(seed) * 1_000_003 + int(epoch)) * 1_009 + self.rank)
