"""Domain shift on purpose (lesson 10): images in [0, 1], (3, H, W) or (B, 3, H, W), changed as
a new camera or site would; a shift's repr names its settings, so features cache apart."""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import default_collate
from torchvision.transforms import v2


def grayscale() -> v2.Grayscale:
    """Colour removed: each pixel's luminance copied to the three channels. Lesson 01."""
    return v2.Grayscale(num_output_channels=3)


def blur(sigma: float) -> v2.GaussianBlur:
    """A Gaussian blur of ``sigma`` pixels (a camera out of focus). Lesson 10."""
    if sigma <= 0:
        raise ValueError(f"sigma={sigma!r}. Fix: pass a blur radius in pixels above 0, e.g. 1.0.")
    return v2.GaussianBlur(kernel_size=2 * math.ceil(3 * sigma) + 1, sigma=sigma)  # +-3 sigma


@dataclass(kw_only=True)  # its repr, Stripes(period=4, strength=0.5), names its settings
class Stripes:
    """Vertical stripes ``period`` pixels wide over the image (a fence, a new background):
    image * (1 - strength) + strength * stripes. Lesson 10."""

    period: int = 4
    strength: float = 0.5

    def __post_init__(self) -> None:
        if self.period < 2 or not 0 <= self.strength <= 1:
            raise ValueError(f"period={self.period!r}, strength={self.strength!r}. Fix: a period "
                             "of at least 2 pixels and a strength from 0 to 1.")

    def __call__(self, images: Tensor) -> Tensor:                   # (..., 3, H, W)
        if not isinstance(images, Tensor):
            raise TypeError(f"Stripes takes image tensors, got a {type(images).__name__}. "
                            "Fix: convert first, e.g. v2.functional.to_image(photo).")
        on = torch.arange(images.shape[-1], device=images.device) % self.period < self.period // 2
        stripes = on.to(images.dtype).expand(images.shape[-2:])    # (H, W), 0 or 1
        return (images * (1 - self.strength) + self.strength * stripes).clamp(0, 1)


def shift_suite(size: int = 32) -> dict[str, Callable]:
    """Name -> shift, scaled to images ``size`` pixels wide. Lesson 10."""
    return {"grayscale": grayscale(), "blur": blur(sigma=size / 32),
            "stripes": Stripes(period=max(2, size // 8))}


class RandomShifts:
    """Augmentation: each image of a (B, 3, H, W) batch gets one of ``shifts`` or none, with
    equal chances; ``collate`` is the same as a DataLoader ``collate_fn``. Lesson 10."""

    def __init__(self, shifts: list[Callable], *, generator: torch.Generator | None = None):
        if not shifts:
            raise ValueError("RandomShifts needs at least one shift. Fix: pass a list of them.")
        self.shifts, self.generator = list(shifts), generator

    def __call__(self, images: Tensor) -> Tensor:                   # (B, 3, H, W)
        choice = torch.randint(len(self.shifts) + 1, (len(images),), generator=self.generator)
        out = images.clone()
        for k, shift in enumerate(self.shifts, start=1):            # 0: left as it is
            rows = (choice == k).to(images.device)
            if rows.any():
                out[rows] = shift(images[rows])  # one call per shift, on its share of the batch
        return out

    def collate(self, batch: list) -> tuple[Tensor, Tensor]:
        images, labels = default_collate(batch)
        return self(images), labels


@torch.no_grad()
def accuracy_under_shifts(model: torch.nn.Module, data: tuple[Tensor, Tensor],
                          shifts: dict[str, Callable], *, device,
                          batch_size: int = 256) -> dict[str, float]:
    """Accuracy on (images, labels) as they are ("none") and under each shift. Lesson 10."""
    images, labels = data
    model.eval()
    results = {}
    for name, shift in {"none": lambda batch: batch, **shifts}.items():
        correct = 0
        for batch, targets in zip(images.split(batch_size), labels.split(batch_size)):
            correct += (model(shift(batch).to(device)).argmax(dim=1).cpu() == targets).sum().item()
        results[name] = correct / len(images)
    return results
