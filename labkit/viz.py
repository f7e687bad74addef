"""Figures the lessons show: training curves, the learning-rate finder, the confusion matrix."""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt

__all__ = ["plot_history", "plot_lr_finder", "plot_confusion_matrix", "LivePlot"]


def plot_history(history, *, fig=None):
    """Loss (and accuracy, when there is one) per epoch, train against validation."""
    metrics = [name for name in ("loss", "accuracy")
               if any(row.get(f"train_{name}") is not None for row in history.rows)]
    fig = fig or plt.figure(figsize=(5 * len(metrics), 3.2))
    fig.clear()
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    for ax, name in zip(axes, metrics):
        for split, style in (("train", "o-"), ("val", "s--")):
            values = [row.get(f"{split}_{name}") for row in history.rows]
            if any(v is not None for v in values):
                ax.plot(history["epoch"], values, style, label=split)
        if history.best_epoch is not None:
            ax.axvline(history.best_epoch, color="grey", lw=0.8, ls=":", label="best")
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.legend()
    fig.tight_layout()
    return fig


def plot_lr_finder(result, *, ax=None):
    """Loss against learning rate on a log axis, with the suggested rate marked."""
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(result.lrs, result.losses)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss (smoothed)")
    if result.suggestion is not None:
        ax.axvline(result.suggestion, color="red", ls="--", label=f"suggested {result.suggestion:.1e}")
        ax.legend()
    return ax


def plot_confusion_matrix(matrix, class_names: Sequence[str] | None = None, *, ax=None):
    """Counts with the true class on rows and the predicted class on columns."""
    matrix = matrix.cpu()
    n = matrix.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    if ax is None:
        _, ax = plt.subplots(figsize=(1 + 0.6 * n, 1 + 0.6 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    threshold = matrix.max().item() / 2 if matrix.numel() else math.inf
    for i in range(n):
        for j in range(n):
            value = matrix[i, j].item()
            ax.text(j, i, value, ha="center", va="center",
                    color="white" if value > threshold else "black")
    return ax


def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and hasattr(shell, "kernel")


class LivePlot:
    """Redraws the training curves in one output after every epoch.

    The figure is shown through a display handle and replaced in place, so a live
    JupyterLab shows it growing, and papermill or nbval, which record the updates,
    keep a single image: the last one. Outside a notebook it does nothing.
    """

    def __init__(self):
        self.enabled = _in_notebook()
        self.handle = None

    def update(self, history) -> None:
        if not self.enabled or not history.rows:
            return
        from IPython.display import display

        fig = plot_history(history)
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)  # otherwise the inline backend shows it a second time at the cell's end
