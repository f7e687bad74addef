"""Training on several processes with ``torchrun`` and DistributedDataParallel. Lesson 12.

A script started by ``torchrun`` calls ``setup()``; ``fit`` then calls ``prepare``, adds the
metrics up over processes, and prints and writes checkpoints on rank 0 only. Without a process
group (``python train.py``) everything here is one process, rank 0."""

from __future__ import annotations

import os
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset

__all__ = ["is_distributed", "rank", "world_size", "is_main_process", "setup", "cleanup",
           "prepare", "set_epoch", "all_reduce", "barrier"]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


def setup(backend: str | None = None, *, timeout_seconds: float = 300) -> torch.device:
    """Join torchrun's process group; returns this process's device (``cuda:LOCAL_RANK`` with
    NCCL, else the CPU). Without torchrun it only returns the device, so the same script also
    runs as ``python train.py``."""
    if "WORLD_SIZE" not in os.environ:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl" and not torch.cuda.is_available():
        raise RuntimeError("backend='nccl' needs CUDA GPUs, and this machine has none. "
                           "Fix: use backend='gloo' (or leave backend unset) on CPUs.")
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if backend == "nccl" \
        else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not is_distributed():
        dist.init_process_group(backend, timeout=timedelta(seconds=timeout_seconds))
    return device


def cleanup() -> None:
    """Leave the process group (once, at the end of a script)."""
    if is_distributed():
        dist.destroy_process_group()


def prepare(model: nn.Module, train_loader: DataLoader, val_loader, device: torch.device):
    """(model, train_loader, val_loader) for this process: under torchrun the model in DDP
    (gradients averaged in every step), the training batches from a ``DistributedSampler``
    and the validation examples split without repeats. Each process keeps the batch size, so
    the global batch is ``world_size()`` times larger. Without a process group: unchanged."""
    if not is_distributed():
        return model, train_loader, val_loader
    sampler = DistributedSampler(train_loader.dataset, drop_last=train_loader.drop_last,
                                 shuffle=isinstance(train_loader.sampler, RandomSampler))
    if val_loader is not None:
        shard = range(rank(), len(val_loader.dataset), world_size())
        val_loader = _like(val_loader, Subset(val_loader.dataset, shard))
    model = nn.parallel.DistributedDataParallel(
        model.to(device), device_ids=[device.index] if device.type == "cuda" else None)
    return model, _like(train_loader, train_loader.dataset, sampler), val_loader


def _like(loader: DataLoader, dataset, sampler=None) -> DataLoader:
    return DataLoader(dataset, batch_size=loader.batch_size, sampler=sampler,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                      pin_memory=loader.pin_memory, drop_last=loader.drop_last)


def set_epoch(loader, epoch: int) -> None:
    """A new shuffle in every epoch on every process (``DistributedSampler.set_epoch``)."""
    if hasattr(getattr(loader, "sampler", None), "set_epoch"):
        loader.sampler.set_epoch(epoch)


def all_reduce(tensor: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """``tensor`` combined over all processes ("sum", "min"), in place."""
    if is_distributed():
        dist.all_reduce(tensor, op=getattr(dist.ReduceOp, op.upper()))
    return tensor


def barrier() -> None:
    if is_distributed():
        dist.barrier()
