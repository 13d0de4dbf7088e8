"""DDP plumbing for `torchrun`: process group from the environment, and a gather that keeps gradients.

torchrun (and Kubeflow Trainer's torch-distributed runtime) sets RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without them training
runs as one process. The backend is NCCL on GPUs and gloo on CPU.

Rendezvous is by default through the TCP store at MASTER_ADDR:MASTER_PORT
(``env://``). Callers that start the ranks themselves (tests) can pass a
``file://`` init method instead: a FileStore needs no port, so nothing can race
for one between choosing it and binding it; and a ``timeout`` that bounds the
rendezvous and every collective, so a missing rank fails instead of hanging.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_nn
from torch import Tensor


@dataclass(frozen=True)
class Context:
    """Where this process sits: its rank among ``world_size`` and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and the model; the others only train."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(init_method: str | None = None, timeout: timedelta | None = None) -> Context:
    """Join the process group torchrun describes in the environment (one process without it).

    ``init_method`` (default ``env://``) and ``timeout`` (default torch's: 30 min
    for gloo, 10 min for NCCL) go to :func:`torch.distributed.init_process_group`;
    rank and world size always come from RANK and WORLD_SIZE.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if cuda else "gloo",
            init_method=init_method,
            timeout=timeout,
            rank=int(os.environ["RANK"]),
            world_size=world_size,
        )
    rank = dist.get_rank() if dist.is_initialized() else 0
    return Context(rank=rank, world_size=world_size, local_rank=local_rank, device=device)


def teardown() -> None:
    """Leave the process group once every rank is done with it.

    The barrier first: gloo frees a finished work item on its own worker thread,
    and freeing one made under autograd needs the GIL, while destroying the group
    holds the GIL and waits for that thread -- a deadlock (one run in ~25 of the
    2-rank test). After the barrier, every earlier work item has been freed.
    """
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def gather(t: Tensor) -> Tensor:
    """Concatenate ``t`` (n, ...) of every rank in rank order -> (world_size * n, ...).

    Tensors that require grad go through the autograd all-gather, whose backward
    sums the gradients every rank computed for this rank's slice; with every rank
    computing the same global loss and DDP averaging parameter gradients over
    ranks, the gradients equal those of one process on the concatenated batch.
    Without a process group this is the identity.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return t
    if t.requires_grad:
        return torch.cat(dist_nn.all_gather(t), dim=0)
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, t.contiguous())
    return torch.cat(parts, dim=0)
