"""What every loop in labkit does with a batch: split it, move it, feed it to the model.

A batch is either an ``(inputs, targets)`` pair, as torchvision datasets give, or a dict with
a ``"labels"`` entry, as Hugging Face tokenizers and collators give.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["split_batch", "to_device", "run_model"]


def split_batch(batch):
    """(inputs, targets) from a (inputs, targets) pair or a dict with a "labels" entry."""
    if isinstance(batch, dict) and "labels" in batch:
        return {k: v for k, v in batch.items() if k != "labels"}, batch["labels"]
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    got = type(batch).__name__ + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
    raise TypeError(f"A batch from the loader is a {got}; labkit needs (inputs, targets) pairs or "
                    "dicts with a 'labels' entry. Fix: make the dataset's __getitem__ return (input, label).")


def to_device(inputs, device: torch.device):
    """Move a tensor, or each tensor of a dict, to ``device`` without blocking the CPU."""
    if isinstance(inputs, dict):
        return {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
    return inputs.to(device, non_blocking=True)


def run_model(model: nn.Module, inputs):
    """model(inputs), or model(**inputs) for a dict of named inputs (input_ids, attention_mask...)."""
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)
