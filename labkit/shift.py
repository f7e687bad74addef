"""Domain shift on purpose: the same images, changed the way a new camera, a new site or a new
season changes them, to measure what a trained model makes of the change.

Every shift is a transform that takes images in [0, 1], one (3, H, W) or a batch (B, 3, H, W),
and returns the same shape; ``grayscale`` and ``blur`` take PIL images too, so they can go in
front of a weights' own transforms::

    shifts = shift_suite(size=32)          # {"grayscale": ..., "blur": ..., "stripes": ...}
    accuracy_under_shifts(model, (images, labels), shifts, device=device)
    # {"none": 0.86, "grayscale": 0.58, ...}

    augment = RandomShifts([shifts["grayscale"], shifts["blur"]])   # training-time defence
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True, collate_fn=augment.collate)

Each transform has a repr that names its settings, so ``labkit.features.extract_features``
caches the features of shifted images apart from those of the originals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor
from torch.utils.data import default_collate
from torchvision.transforms import v2

__all__ = ["grayscale", "blur", "Stripes", "shift_suite", "RandomShifts",
           "accuracy_under_shifts"]


def grayscale() -> v2.Grayscale:
    """Colour removed: each pixel becomes its luminance, copied to the three channels."""
    return v2.Grayscale(num_output_channels=3)


def blur(sigma: float) -> v2.GaussianBlur:
    """A Gaussian blur of standard deviation ``sigma`` pixels (a camera out of focus)."""
    if sigma <= 0:
        raise ValueError(f"sigma={sigma!r}. Fix: pass a blur radius in pixels above 0, e.g. 1.0.")
    kernel = 2 * math.ceil(3 * sigma) + 1  # odd, and wide enough for +-3 sigma
    return v2.GaussianBlur(kernel_size=kernel, sigma=sigma)


class Stripes:
    """A striped texture laid over the whole image (a fence, a screen door, a new background).

    ``strength`` of the stripes' brightness replaces the same share of the image's:
    image * (1 - strength) + strength * stripes, with vertical stripes ``period`` pixels wide.
    """

    def __init__(self, *, period: int = 4, strength: float = 0.5) -> None:
        if period < 2 or not 0 <= strength <= 1:
            raise ValueError(f"period={period!r}, strength={strength!r}. Fix: a period of at "
                             "least 2 pixels and a strength from 0 to 1.")
        self.period, self.strength = period, strength

    def __call__(self, images: Tensor) -> Tensor:                   # (..., 3, H, W)
        if not isinstance(images, Tensor):
            raise TypeError(f"Stripes takes image tensors, got a {type(images).__name__}. "
                            "Fix: convert first, e.g. v2.functional.to_image(photo).")
        width = images.shape[-1]
        on = (torch.arange(width, device=images.device) % self.period) < self.period // 2
        stripes = on.to(images.dtype).expand(images.shape[-2], width)  # (H, W), 0 or 1
        return (images * (1 - self.strength) + self.strength * stripes).clamp(0, 1)

    def __repr__(self) -> str:
        return f"Stripes(period={self.period}, strength={self.strength})"


def shift_suite(size: int = 32) -> dict[str, Callable]:
    """Name -> shift, scaled to images ``size`` pixels wide: what this course measures."""
    return {"grayscale": grayscale(), "blur": blur(sigma=size / 32),
            "stripes": Stripes(period=max(2, size // 8))}


class RandomShifts:
    """Augmentation against the shifts you expect: each image of a batch gets one of
    ``shifts`` or stays as it is, each with the same chance.

    ``augment(images)`` works on a (B, 3, H, W) batch; ``augment.collate`` is a DataLoader
    ``collate_fn`` that stacks (image, label) pairs and then augments the images.
    """

    def __init__(self, shifts: Sequence[Callable], *, generator: torch.Generator | None = None):
        if not shifts:
            raise ValueError("RandomShifts needs at least one shift. Fix: pass a list of them.")
        self.shifts, self.generator = list(shifts), generator

    def __call__(self, images: Tensor) -> Tensor:                   # (B, 3, H, W)
        choice = torch.randint(len(self.shifts) + 1, (images.shape[0],),
                               generator=self.generator)            # 0 means unchanged
        out = images.clone()
        for k, shift in enumerate(self.shifts, start=1):
            rows = (choice == k).to(images.device)
            if rows.any():
                out[rows] = shift(images[rows])  # one call per shift, on its share of the batch
        return out

    def collate(self, batch: list) -> tuple[Tensor, Tensor]:
        images, labels = default_collate(batch)
        return self(images), labels

    def __repr__(self) -> str:
        return f"RandomShifts({self.shifts!r})"


@torch.no_grad()
def accuracy_under_shifts(model: torch.nn.Module, data: tuple[Tensor, Tensor],
                          shifts: dict[str, Callable], *, device,
                          batch_size: int = 256) -> dict[str, float]:
    """Accuracy of ``model`` on ``data`` = (images (N, 3, H, W) in [0, 1], labels (N,)), as
    they are ("none") and under each shift; the model is put in eval mode."""
    images, labels = data
    model.eval()
    results = {}
    for name, shift in {"none": None, **shifts}.items():
        correct = 0
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            batch = batch if shift is None else shift(batch)
            logits = model(batch.to(device))
            correct += (logits.argmax(dim=1).cpu() == labels[start:start + batch_size]).sum().item()
        results[name] = correct / len(images)
    return results
