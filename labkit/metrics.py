"""Accuracy and the confusion matrix, on tensors of class indices or logits."""

from __future__ import annotations

import torch

__all__ = ["accuracy", "confusion_matrix"]


def _as_preds(preds_or_logits: torch.Tensor) -> torch.Tensor:
    # (B, C) logits -> (B,) predicted classes; (B,) class indices pass through.
    return preds_or_logits.argmax(dim=1) if preds_or_logits.ndim == 2 else preds_or_logits


def accuracy(preds_or_logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of predictions equal to the targets (logits are turned into classes first)."""
    preds = _as_preds(preds_or_logits)
    if preds.shape != targets.shape:
        raise ValueError(f"predictions have shape {tuple(preds.shape)} but targets {tuple(targets.shape)}. "
                         "Fix: pass one predicted class (or one row of logits) per target.")
    if targets.numel() == 0:
        raise ValueError("accuracy of no predictions is undefined. Fix: pass at least one target.")
    return (preds == targets).float().mean().item()


def confusion_matrix(preds_or_logits: torch.Tensor, targets: torch.Tensor,
                     num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) counts: row = true class, column = predicted class."""
    preds = _as_preds(preds_or_logits).long().cpu()
    targets = targets.long().cpu()
    if preds.shape != targets.shape:
        raise ValueError(f"predictions have shape {tuple(preds.shape)} but targets {tuple(targets.shape)}. "
                         "Fix: pass one predicted class (or one row of logits) per target.")
    seen = torch.cat([preds, targets])
    if seen.numel() and (seen.min() < 0 or seen.max() >= num_classes):
        raise ValueError(f"class indices run from {seen.min().item()} to {seen.max().item()}, outside "
                         f"0..{num_classes - 1}. Fix: pass num_classes equal to the number of classes.")
    flat = targets * num_classes + preds
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)
