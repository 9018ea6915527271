"""Data-parallel training over several processes, with PyTorch's own ``torch.distributed``.

``torchrun --nproc_per_node=N -m genzoo train CONFIG`` starts N copies of genzoo; ``torchrun`` tells
each its rank through the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``...),
and ``World.from_environment`` joins them into one process group: NCCL between GPUs, Gloo between
CPU processes. From there the recipe is the usual one of data parallelism:

- every process holds the same model (rank 0's weights are broadcast at the start);
- every process draws the same global batch from the data stream and trains on its own slice of it
  (``data.batch_size / N`` examples), with its own random numbers (noise, SGLD, dropout);
- after every backward pass the gradients are averaged over the processes (``average_gradients``), so
  every process takes the same optimizer step and the models stay identical;
- rank 0 alone validates and writes the run folder (metrics, samples, checkpoints).

Why the gradients are averaged here rather than by wrapping the networks in
``torch.nn.parallel.DistributedDataParallel``: DDP hooks its all-reduce into one forward and one backward
of a wrapped module, while a genzoo family's step calls its networks several times with different
needs (the GAN's two players update one after the other, D's gradient flowing into G's step without
D's weights moving; the EBM runs 40 Langevin steps of input gradients before its one weight update).
``optimize`` in ``genzoo/model.py`` is the one place every update passes through, so one flat
all-reduce there, before clipping and the optimizer step, gives exactly DDP's arithmetic (the mean of
the per-process gradients) for every family, without wrapping anything.

Outside ``torchrun`` (no ``WORLD_SIZE`` above 1) nothing here starts and every function is a no-op.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class World:
    """Which of how many data-parallel processes this one is."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that validates, samples and writes the run folder."""
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: torch.device) -> "World":
        """Join torchrun's process group when ``WORLD_SIZE`` > 1 (NCCL on CUDA, Gloo on CPU); else one process."""
        size = int(os.environ.get("WORLD_SIZE", "1"))
        if size == 1:
            return cls()
        if not dist.is_initialized():
            if device.type == "cuda":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
            atexit.register(close)  # leave the group when the process ends, however the run ends
        return cls(dist.get_rank(), dist.get_world_size())


def local_device(device: torch.device) -> torch.device:
    """The GPU of this process under torchrun (``LOCAL_RANK``), else ``device`` unchanged."""
    if device.type == "cuda" and device.index is None and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return device


def world_size() -> int:
    """How many processes train together: 1 outside torchrun."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def all_reduce_(tensor: Tensor, op: str = "sum") -> Tensor:
    """``tensor`` summed (``op="sum"``) or maximised (``"max"``) over the processes, in place."""
    if world_size() > 1:
        dist.all_reduce(tensor, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op])
    return tensor


def average_gradients(params: list[torch.nn.Parameter], loss: Tensor) -> float:
    """Replace every gradient by its mean over the processes, in one flat all-reduce; return the mean loss.

    The loss travels in the same message, so a NaN on any one process reaches every process and
    they all skip the update together (``optimize``): the models never diverge from each other.
    """
    size = world_size()
    if size == 1:
        return float(loss.detach())
    grads = [p.grad for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads] + [loss.detach().reshape(1).float()])
    all_reduce_(flat).div_(size)  # mean = sum / N, the arithmetic of DistributedDataParallel
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()
    return float(flat[-1])


def all_gather_rows(x: Tensor) -> Tensor:
    """``x`` (equal shapes on every process) from every process, concatenated along dim 0 in rank order."""
    size = world_size()
    if size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(size)]
    dist.all_gather(parts, x.contiguous())
    return torch.cat(parts)


def broadcast_state(module: torch.nn.Module) -> None:
    """Every parameter and buffer of ``module`` set to rank 0's, so all processes start identical."""
    if world_size() == 1:
        return
    with torch.no_grad():
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def shard(batch: tuple[Tensor, Tensor], world: World) -> tuple[Tensor, Tensor]:
    """This process's contiguous slice of a global batch: rows rank*b .. (rank+1)*b, b = B / N."""
    if world.size == 1:
        return batch
    per_rank = len(batch[0]) // world.size
    start = world.rank * per_rank
    return batch[0][start : start + per_rank], batch[1][start : start + per_rank]


def close() -> None:
    """Leave the process group (at the end of a torchrun run); nothing outside one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
