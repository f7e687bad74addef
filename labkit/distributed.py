"""Training on several processes with ``torchrun`` and DistributedDataParallel. Lesson 12.

A script calls ``setup()``; ``fit`` then calls ``prepare``, adds the metrics up over processes,
and prints and saves on rank 0 only. Without torchrun everything here is one process, rank 0."""

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler, Subset

__all__ = ["is_distributed", "rank", "world_size", "setup", "cleanup", "prepare", "set_epoch",
           "all_reduce", "barrier"]


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def setup() -> torch.device:
    """Join torchrun's process group (NCCL on GPUs, else Gloo) and return this process's device;
    without torchrun, only the device, so the same script also runs as ``python train.py``.
    GPUs are used only when there is one for each process on this machine: two processes on a
    one-GPU laptop both use the CPU (every process must pick the same backend)."""
    if "WORLD_SIZE" not in os.environ:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device("cpu")
    if torch.cuda.device_count() >= int(os.environ.get("LOCAL_WORLD_SIZE", 1)):
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    if not is_distributed():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def cleanup() -> None:
    """Leave the process group (once, at the end of a script)."""
    if is_distributed():
        dist.destroy_process_group()


def prepare(model: nn.Module, train_loader: DataLoader, val_loader, device: torch.device):
    """(model, train_loader, val_loader) for this process: under torchrun the model in DDP, the
    training batches from a ``DistributedSampler``, the validation examples split without repeats
    (each process keeps the batch size: the global batch is world_size() times larger)."""
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
