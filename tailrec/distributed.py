"""Training the history model on several processes, GPUs or machines (torchrun, DDP).

Under ``torchrun`` every process runs the same script. :func:`start` joins
the process group (NCCL on GPUs, gloo on CPUs) and picks the process's
device; :func:`tailrec.history_model.train_history_model` then notices the
group and:

- keeps only its shard of the interactions: the users whose index modulo
  the number of processes is the process's rank (:func:`shard`), so each
  process reads, holds and scores a share of the data;
- draws the same batches, hidden items and negatives as every other
  process (one seed), scores only its own users in each batch, and lets
  :class:`~torch.nn.parallel.DistributedDataParallel` average the
  gradients. The per-process loss is scaled so that the average is the
  single-process loss of the whole batch: the result matches a run in one
  process up to the order of floating-point sums.

Early stopping needs every user's history in one place to score the
validation set, so distributed training runs a fixed number of epochs
(``validation=None``); choose the count with a single-process run first.
``python -m tailrec.train_distributed`` is a ready command line.
"""

from __future__ import annotations

import gc
import os

import pandas as pd
import torch
from torch import distributed as dist


def process_group() -> tuple[int, int]:
    """This process's rank and the number of processes (0 and 1 outside torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def start() -> torch.device:
    """Join torchrun's process group if there is one; return this process's device.

    Outside torchrun (no ``WORLD_SIZE`` in the environment) nothing is joined
    and the device is the best one here.
    """
    from tailrec.device import best_device

    if "WORLD_SIZE" not in os.environ:
        return best_device()
    device = _local_device()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def stop() -> None:
    """Leave the process group together with the others, if this process joined one.

    A process that left while another still worked (the first one writes
    the results) was seen to abort at exit, its communication threads torn
    down mid-flight: all processes wait for each other here, and the DDP
    wrappers that hold the group are freed before it is destroyed.
    """
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        gc.collect()
        dist.destroy_process_group()


def _local_device() -> torch.device:
    if torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def shard(interactions: pd.DataFrame, rank: int, world: int) -> pd.DataFrame:
    """The interactions of the users that process ``rank`` of ``world`` trains on."""
    if world == 1:
        return interactions
    return interactions[interactions["user_index"].to_numpy() % world == rank]


def summed(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` summed over every process (itself outside torchrun)."""
    if process_group()[1] == 1:
        return tensor
    # NCCL reduces GPU tensors only.
    on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else None
    reduced = tensor.clone() if on is None else tensor.to(on)
    dist.all_reduce(reduced, op=dist.ReduceOp.SUM)
    return reduced.to(tensor.device)
