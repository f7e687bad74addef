"""Accuracy and the confusion matrix, from class indices (B,) or logits (B, C)."""

import torch


def _preds(preds_or_logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """(B,) predicted classes: the argmax of (B, C) logits; (B,) class indices pass through."""
    preds = preds_or_logits.argmax(dim=1) if preds_or_logits.ndim == 2 else preds_or_logits
    if preds.shape != targets.shape:  # == would broadcast them silently
        raise ValueError(f"predictions {tuple(preds.shape)} but targets {tuple(targets.shape)}. "
                         "Fix: pass one predicted class (or one row of logits) per target.")
    return preds


def accuracy(preds_or_logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The share of predictions equal to the targets. Lesson 01."""
    return (_preds(preds_or_logits, targets) == targets).float().mean().item()


def confusion_matrix(preds_or_logits: torch.Tensor, targets: torch.Tensor,
                     num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) counts: row = true class, column = predicted. Lesson 07."""
    preds, targets = _preds(preds_or_logits, targets).long().cpu(), targets.long().cpu()
    seen = torch.cat([preds, targets])
    if seen.numel() and (seen.min() < 0 or seen.max() >= num_classes):
        raise ValueError(f"class indices run from {seen.min().item()} to {seen.max().item()}, "
                         f"outside 0..{num_classes - 1}. Fix: pass num_classes=len(classes).")
    counts = torch.bincount(targets * num_classes + preds, minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes)
