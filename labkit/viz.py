"""Figures the lessons show: training curves, the confusion matrix, top-k predictions beside a
photo, convolution filters, feature maps, label efficiency and 2-D projections of features."""

import matplotlib.pyplot as plt
import numpy as np
from torchvision.utils import make_grid

from labkit.files import in_notebook


class LivePlot:
    """Loss (and accuracy) per epoch, train against validation, redrawn in place after every
    epoch (papermill keeps only the last image); outside a notebook it does nothing. Lesson 01."""

    def __init__(self):
        self.enabled, self.handle = in_notebook(), None

    def update(self, history) -> None:
        if not self.enabled or not history.rows:
            return
        from IPython.display import display
        metrics = [name for name in ("loss", "accuracy")
                   if any(row.get(f"train_{name}") is not None for row in history.rows)]
        fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.2), squeeze=False)
        for ax, name in zip(axes[0], metrics):
            for split, style in (("train", "o-"), ("val", "s--")):
                values = [row.get(f"{split}_{name}") for row in history.rows]
                if any(v is not None for v in values):
                    ax.plot(history["epoch"], values, style, label=split)
            if history.best_epoch is not None:
                ax.axvline(history.best_epoch, color="grey", lw=0.8, ls=":", label="best")
            ax.set(xlabel="epoch", ylabel=name)
            ax.legend()
        fig.tight_layout()
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)
        plt.close(fig)  # otherwise the inline backend shows it a second time at the cell's end


def plot_confusion_matrix(matrix, class_names: list[str] | None = None):
    """Counts, true class on rows, predicted class on columns. Lesson 07."""
    matrix, n = matrix.cpu().numpy(), matrix.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(n)]
    _, ax = plt.subplots(figsize=(1 + 0.6 * n, 1 + 0.6 * n))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), names, rotation=45, ha="right")
    ax.set(xlabel="predicted", ylabel="true", yticks=range(n), yticklabels=names)
    for (i, j), value in np.ndenumerate(matrix):  # white on the dark half of the colour scale
        ax.text(j, i, value, ha="center", va="center",
                color="white" if value > matrix.max() / 2 else "black")
    return ax


def plot_predictions(images, predictions, *, titles: list[str] | None = None):
    """Each image beside a bar chart of its top-k classes (from ``classify``). Lesson 02."""
    fig, axes = plt.subplots(len(images), 2, figsize=(9, 2.6 * len(images)), squeeze=False,
                             gridspec_kw={"width_ratios": [1, 1.4]})
    for row, (image, top) in enumerate(zip(images, predictions)):
        axes[row, 0].imshow(image)
        axes[row, 0].axis("off")
        axes[row, 0].set_title(titles[row] if titles else "")
        names, probs = [name for name, _ in top][::-1], [p for _, p in top][::-1]
        bars = axes[row, 1].barh(range(len(top)), probs, color="tab:blue")
        axes[row, 1].set_yticks(range(len(top)), names)  # by position: ImageNet repeats names
        axes[row, 1].bar_label(bars, fmt="{:.1%}", padding=2)
        axes[row, 1].set(xlim=(0, 1.15), xlabel="probability")
    fig.tight_layout()
    return fig


def plot_filters(weight, *, columns: int = 16):
    """The first 64 first-layer filters (out, 3, k, k), each scaled to [0, 1]. Lesson 01."""
    weight = weight.detach().float().cpu()[:64]                      # (out, 3, k, k)
    grid = make_grid(weight, nrow=columns, padding=1, normalize=True, scale_each=True,
                     pad_value=1)                                     # (3, height, width)
    fig, ax = plt.subplots(figsize=(columns * 0.6, columns * 0.6 * grid.shape[1] / grid.shape[2]))
    ax.imshow(grid.permute(1, 2, 0), interpolation="nearest")
    ax.axis("off")
    return fig


def plot_feature_maps(maps, *, per_layer: int = 8):
    """A row per layer: the first ``per_layer`` channels of each (1, C, H, W) map. Lesson 02."""
    fig, axes = plt.subplots(len(maps), per_layer, figsize=(per_layer * 1.3, len(maps) * 1.5),
                             squeeze=False)
    for row, (name, fmap) in enumerate(maps.items()):
        channels, height, width = fmap.shape[-3:]
        for column, ax in enumerate(axes[row]):
            ax.set(xticks=[], yticks=[])
            if column < channels:
                ax.imshow(fmap[0, column].float(), cmap="viridis")
        axes[row, 0].set_ylabel(f"{name}\n{channels}x{height}x{width}", fontsize=8)
    fig.tight_layout()
    return fig


def plot_label_efficiency(summary):
    """Accuracy by label count, a line per method: mean and one std over seeds. Lesson 01."""
    _, ax = plt.subplots(figsize=(6, 3.8))
    for method in dict.fromkeys(method for method, _ in summary):
        counts = sorted(labels for m, labels in summary if m == method)
        mean, std = np.array([summary[method, n][:2] for n in counts]).T  # (counts,) each
        ax.plot(counts, mean, "o-", label=method)
        ax.fill_between(counts, mean - std, mean + std, alpha=0.2)
    ticks = sorted({labels for _, labels in summary})
    ax.set(xscale="log", xlabel="labelled examples per class", ylabel="test accuracy", ylim=(0, 1))
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.legend()
    return ax


def plot_projection(points, labels, class_names: list[str], *, ax=None, title=None):
    """A scatter of 2-D points (N, 2), one colour per class, e.g. features after PCA. Lesson 05."""
    points, labels = points.detach().float().cpu(), labels.cpu()
    if points.ndim != 2 or points.shape[1] != 2 or labels.shape != points.shape[:1]:
        raise ValueError(f"plot_projection draws (N, 2) points with (N,) labels, got "
                         f"{tuple(points.shape)} and {tuple(labels.shape)}. Fix: project the "
                         f"features to two dimensions first, e.g. with PCA.")
    ax = ax or plt.subplots(figsize=(4, 3.6))[1]
    for index, name in enumerate(class_names):
        chosen = labels == index
        ax.scatter(points[chosen, 0], points[chosen, 1], s=12, alpha=0.7, label=name)
    ax.set(xticks=[], yticks=[], title=title or "")
    ax.legend(fontsize=8)
    return ax
