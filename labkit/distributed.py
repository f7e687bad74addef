"""Training on several processes with ``torchrun`` and DistributedDataParallel (DDP).

``torchrun --nproc_per_node=N train.py`` starts N copies of a script and tells each, through
environment variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``,
``MASTER_PORT``), who it is and where to meet the others. A script calls ``setup()`` once;
after that ``labkit.train.fit`` sees the process group and, by itself:

- wraps the model in ``DistributedDataParallel``, which averages the gradients of all
  processes in every step, so each process keeps an identical copy of the weights;
- gives each process its own share of every batch (``distributed_loader``: a
  ``DistributedSampler`` when training, reshuffled each epoch with ``set_epoch``; a plain
  shard without padding when evaluating, so no example is counted twice);
- adds up losses and accuracies over all processes before reporting them;
- draws progress bars, prints and writes checkpoints on rank 0 only, and waits at a
  barrier until the checkpoint is on disk before any process goes on.

The backend is NCCL on GPUs and Gloo on CPUs. Nothing here changes a run in one process:
every function falls back to "one process, rank 0" when no process group is set up.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Sampler

__all__ = ["is_distributed", "rank", "world_size", "is_main_process", "setup", "cleanup",
           "distributed_loader", "ShardSampler", "wrap_model", "unwrap_model", "all_reduce_sum",
           "barrier", "main_process_first"]


def is_distributed() -> bool:
    """True inside a process group of more than zero processes (after ``setup``)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


def setup(backend: str | None = None, *, timeout_seconds: float = 300) -> torch.device:
    """Join the process group ``torchrun`` describes in the environment; returns this process's
    device (``cuda:LOCAL_RANK`` with NCCL, the CPU with Gloo).

    Outside ``torchrun`` (no ``WORLD_SIZE`` in the environment) it does nothing and returns the
    device a single process would use, so the same script also runs as ``python train.py``.
    """
    if "WORLD_SIZE" not in os.environ:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl" and not torch.cuda.is_available():
        raise RuntimeError("backend='nccl' needs CUDA GPUs, and this machine has none. "
                           "Fix: use backend='gloo' (or leave backend unset) on CPUs.")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if backend == "nccl":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not is_distributed():
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_seconds))
    return device


def cleanup() -> None:
    """Leave the process group (call once at the end of a script)."""
    if is_distributed():
        dist.destroy_process_group()


class ShardSampler(Sampler[int]):
    """Indices ``rank, rank + world, rank + 2 * world, ...`` in order: every example exactly
    once over all processes (unlike ``DistributedSampler``, which pads with repeats)."""

    def __init__(self, dataset, *, num_replicas: int | None = None, rank_: int | None = None):
        self.size = len(dataset)
        self.num_replicas = world_size() if num_replicas is None else num_replicas
        self.rank = rank() if rank_ is None else rank_

    def __iter__(self):
        return iter(range(self.rank, self.size, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.size, self.num_replicas))


def distributed_loader(loader: DataLoader, *, train: bool, seed: int = 0) -> DataLoader:
    """The same DataLoader (dataset, batch size, collate function, workers), but giving this
    process only its share: a ``DistributedSampler`` for training (shuffled when ``loader``
    shuffled, reshuffled by ``set_epoch``), a ``ShardSampler`` for evaluation.

    Each process's batch keeps ``loader.batch_size``, so the global batch is
    ``world_size()`` times larger; divide the batch size by the number of processes to keep
    the global batch of a single-process run. Without a process group, ``loader`` itself.
    """
    if not is_distributed() or isinstance(loader.sampler, (DistributedSampler, ShardSampler)):
        return loader
    if loader.batch_size is None:
        raise ValueError("This DataLoader uses a batch_sampler, which labkit cannot split across "
                         "processes. Fix: build the DataLoader with batch_size=... and, under "
                         "torchrun, a DistributedSampler of your own.")
    if train:
        sampler = DistributedSampler(loader.dataset, shuffle=isinstance(loader.sampler, RandomSampler),
                                     seed=seed, drop_last=loader.drop_last)
    else:
        sampler = ShardSampler(loader.dataset)
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=sampler,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                      pin_memory=loader.pin_memory, drop_last=loader.drop_last,
                      timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
                      persistent_workers=loader.persistent_workers)


def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel (once), on ``device``."""
    if isinstance(model, nn.parallel.DistributedDataParallel):
        return model
    model.to(device)
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def all_reduce_sum(*tensors: torch.Tensor) -> None:
    """Add each tensor up over all processes, in place (nothing happens in one process)."""
    if is_distributed():
        for tensor in tensors:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@contextmanager
def main_process_first():
    """Rank 0 runs the block first (a download, a cache to fill), then the others."""
    if not is_main_process():
        barrier()
    try:
        yield
    finally:
        if is_main_process():
            barrier()
