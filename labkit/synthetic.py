"""Procedural images (lesson 01), same seed same pixels: shapes on clutter. ``SOURCE_CLASSES``
and ``TARGET_CLASSES`` need the same edges and corners, so pre-training on one helps the other."""

from pathlib import Path

import numpy as np
import torch
from matplotlib.path import Path as Polygon
from PIL import Image


def _regular(corners: int, inner: float | None = None) -> np.ndarray:
    """Corners of a regular polygon (a star with an ``inner`` radius) on the unit circle."""
    steps = corners * (2 if inner else 1)
    angles = np.pi / 2 + 2 * np.pi * np.arange(steps) / steps
    radius = np.ones(steps) if inner is None else np.where(np.arange(steps) % 2, inner, 1.0)
    return np.stack([radius * np.cos(angles), radius * np.sin(angles)], axis=1)


SHAPES: dict[str, np.ndarray] = {  # outlines in unit coordinates, (K, 2)
    "triangle": _regular(3),
    "square": _regular(4) / np.sqrt(2) * 1.3,
    "pentagon": _regular(5),
    "hexagon": _regular(6),
    "star": _regular(5, inner=0.42),
    "cross": np.array([[-.3, 1], [.3, 1], [.3, .3], [1, .3], [1, -.3], [.3, -.3], [.3, -1],
                       [-.3, -1], [-.3, -.3], [-1, -.3], [-1, .3], [-.3, .3]]),
    "arrow": np.array([[-1, -.3], [.2, -.3], [.2, -.8], [1, 0], [.2, .8], [.2, .3], [-1, .3]]),
    "chevron": np.array([[-1, -.9], [0, .1], [1, -.9], [1, -.3], [0, .7], [-1, -.3]]),
}
SOURCE_CLASSES = ("triangle", "square", "pentagon", "star", "cross")
TARGET_CLASSES = ("hexagon", "arrow", "chevron")


def _draw(rng: np.random.Generator, shape: str, size: int) -> np.ndarray:
    """One (size, size, 3) image: the shape, rotated and scaled, on a noisy colour gradient."""
    a, b, mix = rng.uniform(0, 1, 3), rng.uniform(0, 1, 3), rng.uniform(0, 1)
    ramp = np.linspace(0, 1, size)[:, None, None]
    blend = mix * ramp + (1 - mix) * ramp.transpose(1, 0, 2)       # (H, W, 1)
    image = a * (1 - blend) + b * blend + rng.normal(0, 0.05, (size, size, 3))
    angle = rng.uniform(0, 2 * np.pi)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    scale, centre = rng.uniform(0.28, 0.42) * size, rng.uniform(0.4, 0.6, 2) * size
    outline = SHAPES[shape] @ rotation.T * scale + centre
    grid = np.stack(np.meshgrid(np.arange(size) + .5, np.arange(size) + .5), -1).reshape(-1, 2)
    inside = Polygon(outline).contains_points(grid).reshape(size, size)
    colour = rng.uniform(0, 1, 3)
    while np.abs(colour - image[inside].mean(0)).sum() < 0.6:  # keep the shape visible
        colour = rng.uniform(0, 1, 3)
    image[inside] = colour + rng.normal(0, 0.04, (inside.sum(), 3))
    return np.clip(image, 0, 1)


def make_shapes(classes: tuple[str, ...] | list[str], n_per_class: int, *, size: int = 32,
                seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 3, size, size) in [0, 1], labels (N,) int64), the classes interleaved
    (0, 1, 2, 0, 1, 2, ...) so any prefix is balanced. Lesson 01."""
    rng = np.random.default_rng(seed)
    labels = np.tile(np.arange(len(classes)), n_per_class)
    images = np.stack([_draw(rng, classes[label], size) for label in labels])  # (N, H, W, 3)
    return torch.from_numpy(images.transpose(0, 3, 1, 2)).float(), torch.from_numpy(labels).long()


def write_image_folder(root: Path, classes, n_per_class: int, *, size: int = 64, seed: int = 0):
    """JPEGs in ImageFolder's ``root/<class>/<n>.jpg`` layout: smoke runs' stand-in photos."""
    images, labels = make_shapes(classes, n_per_class, size=size, seed=seed)
    for index, (image, label) in enumerate(zip(images, labels)):
        folder = Path(root) / classes[label]
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (image.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:05d}.jpg", quality=92)
    return Path(root)
