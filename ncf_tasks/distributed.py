"""Rank primitives of data-parallel training (``train_procs``, ``NCF_TRAIN_PROCS``): join the process group,
wrap a model in ``DistributedDataParallel``, sum a tensor over the ranks, leave.

The launch is the ``train`` stage's (``train.launch``: torch's elastic launcher, the ranks get the settings in
memory); this module knows nothing of stages. How an epoch is split (``fitting.train_epoch``): every rank
draws the same permutation of the positives and the same negatives (the one-process stream, same seed),
and computes its contiguous ``1/world`` of each batch, with the loss scaled so that DDP's average of the
ranks' gradients is the whole batch's gradient. The optimiser sees the same batches, steps and gradients
as one process: ``train_procs=N`` trains the model ``train_procs=1`` trains, up to the order of float sums
(tested). The price is that every rank draws the whole epoch's negatives (cheap next to the model's
forward and backward, on a GPU most of all). Every rank scores the validation candidates (cheap,
identical weights), so all of them take the same early-stopping decision; only rank 0 writes.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ncf_tasks.config import Settings

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rank:
    rank: int
    world: int
    local_rank: int

    @property
    def leader(self) -> bool:
        return self.rank == 0


def in_worker() -> bool:
    """True inside a rank that a launcher started (it sets RANK and WORLD_SIZE)."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init(settings: Settings) -> Rank:
    """Join the process group: NCCL on CUDA (this rank's GPU made current), gloo on CPU."""
    import torch
    import torch.distributed as dist

    me = Rank(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    cuda = settings.torch_device == "cuda"
    if cuda:
        torch.cuda.set_device(me.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    log.info("rank %d of %d (local %d), backend %s", me.rank, me.world, me.local_rank, dist.get_backend())
    return me


def wrap(net: "torch.nn.Module", me: Rank, device: "torch.device") -> "torch.nn.Module":
    """The module the training steps go through: gradients all-reduced across ranks after backward."""
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(net, device_ids=[me.local_rank] if device.type == "cuda" else None)


def all_sum(value: "torch.Tensor") -> "torch.Tensor":
    import torch.distributed as dist

    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def leave() -> None:
    """Leave the process group (every rank, at the end of its training)."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
