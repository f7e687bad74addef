"""The learning-rate finder (lesson 06): train briefly while raising the rate, and suggest the
rate where the (smoothed) loss falls fastest. Model and optimizer are put back afterwards."""

import copy
import itertools
import math
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn

from labkit.batches import run_model, split_batch, to_device
from labkit.transfer import aux_loss, train_mode


@dataclass
class LRFinderResult:
    lrs: list[float]
    losses: list[float]
    suggestion: float | None

    def plot(self):
        """Loss against learning rate on a log axis, the suggestion marked."""
        _, ax = plt.subplots(figsize=(5, 3.2))
        ax.plot(self.lrs, self.losses)
        ax.set(xscale="log", xlabel="learning rate", ylabel="loss (smoothed)")
        if self.suggestion is not None:
            ax.axvline(self.suggestion, ls="--", c="red", label=f"suggested {self.suggestion:.1e}")
            ax.legend()
        return ax


def find_lr(model: nn.Module, train_loader, device, *, optimizer=None, start_lr: float = 1e-7,
            end_lr: float = 10.0, num_steps: int = 100,
            keep_ratios: bool = False) -> LRFinderResult:
    """Raise the rate from ``start_lr`` to ``end_lr`` over ``num_steps`` batches until the loss
    passes 4 times its best; ``keep_ratios``: groups keep their share of the top rate. Lesson 06."""
    model.to(device)
    if optimizer is None:
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=start_lr)
    saved_model, saved_optimizer = copy.deepcopy((model.state_dict(), optimizer.state_dict()))
    top = max(group["lr"] for group in optimizer.param_groups)
    if keep_ratios and not top > 0:
        raise ValueError("keep_ratios=True takes the ratios of the optimizer's rates, which need "
                         "to be positive. Fix: e.g. AdamW(param_groups(model, lr=1e-3)).")
    ratios = [group["lr"] / top if keep_ratios else 1.0 for group in optimizer.param_groups]
    lrs, losses, smooth, best = [], [], None, math.inf
    # A short loader is walked again; the rates are evenly spaced on a log axis.
    batches = itertools.chain.from_iterable(itertools.repeat(train_loader, num_steps))
    train_mode(model)
    try:
        for lr, batch in zip(np.geomspace(start_lr, end_lr, num_steps).tolist(), batches):
            for group, ratio in zip(optimizer.param_groups, ratios):
                group["lr"] = lr * ratio
            inputs, targets = split_batch(batch)
            outputs = run_model(model, to_device(inputs, device))
            loss, _ = aux_loss(outputs, targets.to(device), nn.functional.cross_entropy)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            # An exponential moving average: one batch's loss is noisy.
            smooth = loss.item() if smooth is None else 0.05 * loss.item() + 0.95 * smooth
            if not math.isfinite(smooth) or smooth > 4 * best:
                break
            best = min(best, smooth)
            lrs.append(lr)
            losses.append(smooth)
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_optimizer)
    # The steepest fall: the most negative d loss / d log(lr), by central differences.
    slopes = [(losses[i + 1] - losses[i - 1]) / math.log(lrs[i + 1] / lrs[i - 1])
              for i in range(1, len(losses) - 1)]
    return LRFinderResult(lrs, losses, lrs[1 + slopes.index(min(slopes))] if slopes else None)
