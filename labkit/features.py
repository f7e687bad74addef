"""Lesson 05: a frozen backbone's features, computed once and cached under a key of its weights
and the data (transform, image loader, Subset, bytes or tensors); edited code needs refresh=True."""

import hashlib
import math
import os
import time
import warnings
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.utils.data import Subset, TensorDataset

from labkit.batches import run_model, split_batch, to_device
from labkit.checkpoint import load_error_reason
from labkit.config import cache_dirs
from labkit.files import atomic_write, sha256_file


def _update(digest, *parts) -> None:
    """Hash each part after its length, so ("ab", "c") and ("a", "bc") differ; a tensor with
    its shape and dtype, one at a time (a 500 MB VGG16 is never copied whole)."""
    for part in parts:
        if isinstance(part, Tensor):
            part = part.detach().cpu().contiguous()
            _update(digest, tuple(part.shape), part.dtype)
            data = part.reshape(-1).view(torch.uint8).numpy()
        else:
            data = part if isinstance(part, bytes) else str(part).encode()
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)


def feature_cache_key(backbone: nn.Module, dataset) -> str:
    """The sha256 (hex) naming the saved features of ``backbone`` over ``dataset``. Lesson 05."""
    digest = hashlib.sha256()
    _update(digest, "labkit features v1", type(backbone).__name__)  # v2: another file layout
    for name, tensor in backbone.state_dict().items():
        _update(digest, name, tensor)
    positions = None  # the samples that a Subset reads, as indices into its dataset
    if isinstance(dataset, Subset):
        positions, dataset = [int(i) for i in dataset.indices], dataset.dataset
    loader = getattr(dataset, "loader", None)  # how files become images (labkit.images converts)
    _update(digest, repr(getattr(dataset, "transform", None)),
            repr(getattr(dataset, "target_transform", None)),
            f"{getattr(loader, '__module__', '')}.{getattr(loader, '__qualname__', '')}")
    if positions is not None:
        _update(digest, "subset", torch.tensor(positions, dtype=torch.int64))
    samples = getattr(dataset, "samples", None)
    if isinstance(dataset, TensorDataset):
        _update(digest, *dataset.tensors)
    elif isinstance(samples, list) and all(len(pair) == 2 for pair in samples):  # ImageFolder
        root = getattr(dataset, "root", None)
        for path, label in (samples if positions is None else [samples[i] for i in positions]):
            # Relative paths: the same images copied to another folder reuse the cache.
            name = Path(os.path.relpath(path, root)).as_posix() if root else str(path)
            _update(digest, name, label, sha256_file(path))
    else:
        raise ValueError(
            f"The contents of a {type(dataset).__name__} cannot be fingerprinted (labkit reads a "
            "dataset's .samples image files, or a TensorDataset's tensors), so cached features "
            "could not tell when the data changes. Fix: pass cache_dir=False.")
    return digest.hexdigest()


def extract_features(backbone: nn.Module, loader, device: torch.device | str, *,
                     cache_dir: str | os.PathLike | None | bool = None,
                     refresh: bool = False) -> tuple[Tensor, Tensor]:
    """(features (N, D) float32, labels (N,) int64) on the CPU from one pass of ``backbone``,
    cached in ``cache_dir`` (None: LABKIT_DATA/features; False: off). Lesson 05."""
    path = None
    if cache_dir is not False:
        cache_dir = cache_dir or cache_dirs()["course datasets (LABKIT_DATA)"] / "features"
        key = feature_cache_key(backbone, getattr(loader, "dataset", loader))
        path = Path(cache_dir) / f"{type(backbone).__name__}-{key[:16]}.pt"
        try:
            if path.exists() and not refresh:
                saved = torch.load(path, weights_only=True)  # tensors and plain containers only
                if saved.get("key") != key:
                    raise ValueError("it was saved for other inputs or by another labkit version")
                print(f"labkit: features loaded from the cache {path}")
                return saved["features"], saved["labels"]
        except Exception as exc:  # a half-written or foreign file fails in many different ways
            corrupt = path.with_name(path.name + ".corrupt")
            os.replace(path, corrupt)
            warnings.warn(f"The feature cache {path} is corrupt or unreadable ("
                          f"{load_error_reason(exc)}); it was moved to {corrupt} and the features "
                          f"are extracted again. Fix: nothing to do; delete {corrupt} when you no "
                          "longer need it.", stacklevel=2)
    start, was_training = time.perf_counter(), backbone.training
    features, labels = [], []
    backbone.eval()  # dropout off, BatchNorm uses its running statistics
    try:
        with torch.inference_mode():
            for batch in loader:
                inputs, targets = split_batch(batch)
                outputs = run_model(backbone, to_device(inputs, device))
                features.append(outputs.flatten(1).float().cpu())    # (B, D)
                labels.append(torch.as_tensor(targets).long().cpu())  # (B,)
    finally:
        backbone.train(was_training)
    # Concatenated outside inference_mode: normal tensors that a head can train on.
    features, labels = torch.cat(features), torch.cat(labels)
    if path is not None:  # atomic: an interrupted run never leaves half a file under this name
        saved = {"features": features, "labels": labels, "key": key}
        atomic_write(path, lambda file: torch.save(saved, file))
    print(f"labkit: extracted {features.shape[0]} features of size {features.shape[1]} in "
          f"{time.perf_counter() - start:.1f} s ({f'saved to {path}' if path else 'cache off'})")
    return features, labels


class FeatureLoader:
    """Batches of (features, labels) cut from whole tensors, no per-sample calls. Lesson 05."""

    def __init__(self, features: Tensor, labels: Tensor, *, batch_size: int,
                 shuffle: bool = False, generator: torch.Generator | None = None) -> None:
        self.dataset = TensorDataset(features, labels)  # checks that the sizes match
        self.batch_size, self.shuffle, self.generator = batch_size, shuffle, generator

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.batch_size)

    def __iter__(self):
        features, labels = self.dataset.tensors
        order = (torch.randperm(len(features), generator=self.generator) if self.shuffle
                 else torch.arange(len(features)))                        # a new order per epoch
        for rows in order.to(features.device).split(self.batch_size):     # (batch_size,)
            yield features[rows], labels[rows]
