"""The learning-rate finder: train briefly while raising the rate, watch where the loss falls fastest.

Start tiny, multiply the learning rate by a constant after every batch, and record the
(smoothed) loss. Too low a rate barely moves the loss; too high a rate makes it explode.
The suggestion is the rate where the loss falls most steeply, a good starting point.
The model and optimizer are put back exactly as they were afterwards.

With discriminative learning rates (``labkit.transfer.param_groups``) pass
``keep_ratios=True``: the sweep then sets the largest rate (the head's) and every other
group keeps its own fraction of it, exactly as in the training that follows.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import nn

from labkit.batches import run_model, split_batch, to_device
from labkit.transfer import aux_loss, train_mode

__all__ = ["find_lr", "LRFinderResult"]


@dataclass
class LRFinderResult:
    lrs: list[float]
    losses: list[float]
    suggestion: float | None

    def plot(self, ax=None):
        from labkit.viz import plot_lr_finder

        return plot_lr_finder(self, ax=ax)


def _steepest(lrs: list[float], losses: list[float]) -> float | None:
    if len(losses) < 3:
        return None
    slopes = [(losses[i + 1] - losses[i - 1]) / (math.log(lrs[i + 1]) - math.log(lrs[i - 1]))
              for i in range(1, len(losses) - 1)]
    return lrs[1 + min(range(len(slopes)), key=slopes.__getitem__)]


def find_lr(model: nn.Module, train_loader, device, *, optimizer=None, loss_fn=None,
            start_lr: float = 1e-7, end_lr: float = 10.0, num_steps: int = 100,
            smoothing: float = 0.05, diverge: float = 4.0,
            keep_ratios: bool = False) -> LRFinderResult:
    """Sweep the learning rate from start_lr to end_lr over num_steps batches (fewer if the
    loss explodes past ``diverge`` times its best value).

    Every parameter group gets the swept rate, unless ``keep_ratios``: then the group with
    the largest rate gets it and each other group the same fraction of it as it has in the
    optimizer now (a group at a tenth of the head's rate stays at a tenth). The recorded
    rates and the suggestion are then the largest group's.
    """
    if not 0 < start_lr < end_lr:
        raise ValueError(f"start_lr={start_lr} and end_lr={end_lr}. Fix: 0 < start_lr < end_lr.")
    device = torch.device(device)
    model.to(device)
    if optimizer is None:
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=start_lr)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    saved_model, saved_optimizer = copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict())
    factor = (end_lr / start_lr) ** (1 / max(num_steps - 1, 1))
    top = max(group["lr"] for group in optimizer.param_groups)
    if keep_ratios and not top > 0:
        raise ValueError("keep_ratios=True needs the optimizer's groups to have positive "
                         "learning rates to take the ratios from. Fix: build the optimizer "
                         "with its rates, e.g. AdamW(param_groups(model, lr=1e-3)).")
    # Each group's share of the largest rate: all 1 unless keep_ratios.
    ratios = [group["lr"] / top if keep_ratios else 1.0 for group in optimizer.param_groups]
    lrs, losses, smooth, best = [], [], None, math.inf
    train_mode(model)
    try:
        batches = iter(())
        for step in range(num_steps):
            try:
                batch = next(batches)
            except StopIteration:  # a short loader is walked again
                batches = iter(train_loader)
                batch = next(batches)
            lr = start_lr * factor**step
            for group, ratio in zip(optimizer.param_groups, ratios):
                group["lr"] = lr * ratio
            inputs, targets = split_batch(batch)
            loss, _ = aux_loss(run_model(model, to_device(inputs, device)), targets.to(device), loss_fn)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            value = loss.item()  # one sync per step is fine for a 100-step sweep
            smooth = value if smooth is None else smoothing * value + (1 - smoothing) * smooth
            if not math.isfinite(smooth) or smooth > diverge * best:
                break
            best = min(best, smooth)
            lrs.append(lr)
            losses.append(smooth)
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
    return LRFinderResult(lrs, losses, _steepest(lrs, losses))
