"""What every loop in labkit does with a batch: split it, move it, feed it to the model. A batch is
an ``(images, labels)`` pair (torchvision) or a dict with a ``"labels"`` entry (Hugging Face
tokenizers, lesson 09); with these, lesson 01's loop reads the same for both."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["split_batch", "to_device", "run_model", "Inputs", "AcceptsDicts"]


class Inputs(dict):
    """A tokenizer's named inputs (input_ids, attention_mask...) that move like a tensor."""

    def to(self, device, non_blocking: bool = False) -> Inputs:
        return Inputs({k: v.to(device, non_blocking=non_blocking) for k, v in self.items()})


def split_batch(batch):
    """(inputs, labels) from an (inputs, labels) pair or a dict with a "labels" entry."""
    if isinstance(batch, dict) and "labels" in batch:
        return Inputs({k: v for k, v in batch.items() if k != "labels"}), batch["labels"]
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    length = f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else ""
    raise TypeError(f"A batch from the loader is a {type(batch).__name__}{length}; labkit needs "
                    "(inputs, targets) pairs or dicts with a 'labels' entry. Fix: make the "
                    "dataset's __getitem__ return (input, label).")


def to_device(inputs, device: torch.device):
    """A tensor, or each tensor of a dict, on ``device``, without blocking the CPU."""
    return (Inputs(inputs) if isinstance(inputs, dict) else inputs).to(device, non_blocking=True)


def run_model(model: nn.Module, inputs):
    """model(inputs), or model(**inputs) for a dict of named inputs (input_ids...)."""
    return model(**inputs) if isinstance(inputs, dict) else model(inputs)


class AcceptsDicts(nn.Module):
    """``model(images)`` for a tensor and a tokenizer's dict alike; fit and evaluate call every
    model through it. Lesson 09."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.model if isinstance(model, AcceptsDicts) else model

    def forward(self, images):
        return run_model(self.model, images)
