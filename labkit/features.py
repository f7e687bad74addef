"""Run a frozen backbone over a dataset once, keep the features, and train heads on them.

Feature extraction is the slow half of transfer learning: a frozen backbone gives the same
features every epoch, so the course computes them once and saves them::

    from labkit.features import FeatureLoader, extract_features
    train_features, train_labels = extract_features(backbone, train_loader, device)
    train_loader = FeatureLoader(train_features.to(device), train_labels.to(device),
                                 batch_size=256, shuffle=True)

``labkit.transfer.swap_head(model, nn.Identity())`` turns a torchvision classifier into such a
backbone.

The saved file is found again under a key made of everything that decides the features:
the backbone's class and weights, the dataset's transform, which samples a Subset picks,
and the data itself (image files' bytes, or the tensors of a TensorDataset). Change any of
them and the features are extracted again. What the key cannot see (edited code in a
``forward``, a transform whose repr hides a setting) needs ``refresh=True``.
"""

from __future__ import annotations

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
from labkit.checkpoint import atomic_save, load_error_reason
from labkit.config import cache_dirs

__all__ = ["extract_features", "feature_cache_key", "FeatureLoader"]

CACHE_FORMAT = 1


# --- the cache key ----------------------------------------------------------------------


def _update(digest, *parts) -> None:
    """Feed each part with its length first, so ("ab", "c") and ("a", "bc") hash apart."""
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        digest.update(len(data).to_bytes(8, "little") + data)


def _update_tensor(digest, name: str, tensor: Tensor) -> None:
    """Hash one tensor's name, shape, dtype and bytes; one tensor at a time, so a 500 MB
    VGG16 is never copied into one big buffer."""
    tensor = tensor.detach()
    _update(digest, name, tuple(tensor.shape), tensor.dtype)
    data = tensor.cpu().contiguous().reshape(-1).view(torch.uint8).numpy()
    _update(digest, data.nbytes)
    digest.update(data)


def _file_digest(path) -> bytes:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.digest()


def _unwrap_subsets(dataset) -> tuple[object, list[int] | None]:
    """The dataset under any Subsets, and the positions in it that the outer one reads."""
    positions = None
    while isinstance(dataset, Subset):
        indices = [int(i) for i in dataset.indices]
        positions = indices if positions is None else [indices[p] for p in positions]
        dataset = dataset.dataset
    return dataset, positions


def _update_contents(digest, dataset, positions: list[int] | None) -> None:
    samples = getattr(dataset, "samples", None)
    if isinstance(dataset, TensorDataset):
        for i, tensor in enumerate(dataset.tensors):
            _update_tensor(digest, f"tensor {i}", tensor)
    elif isinstance(samples, list) and all(len(pair) == 2 for pair in samples):  # ImageFolder
        root = getattr(dataset, "root", None)
        for i in range(len(samples)) if positions is None else positions:
            path, label = samples[i]
            # Relative paths: the same images copied to another folder reuse the cache.
            name = Path(os.path.relpath(path, root)).as_posix() if root else str(path)
            _update(digest, name, label, _file_digest(path))
    else:
        raise ValueError(
            f"The contents of a {type(dataset).__name__} cannot be fingerprinted (labkit reads "
            "image files from a dataset's .samples list, or the tensors of a TensorDataset), so "
            "cached features could not tell when the data changes. Fix: pass "
            "cache_key='a name that changes when the data changes', or cache_dir=False to "
            "switch caching off."
        )


def feature_cache_key(backbone: nn.Module, dataset, cache_key: str | None = None) -> str:
    """The sha256 (hex) that names the saved features of ``backbone`` over ``dataset``.

    It covers the backbone's class and state_dict, the dataset's transform (its repr) and
    image loader, the indices of any Subset, and the data; an explicit ``cache_key`` replaces
    the data part.
    """
    digest = hashlib.sha256()
    _update(digest, f"labkit features v{CACHE_FORMAT}", type(backbone).__name__)
    for name, tensor in backbone.state_dict().items():
        _update_tensor(digest, name, tensor)
    base, positions = _unwrap_subsets(dataset)
    loader = getattr(base, "loader", None)  # how files become images (labkit.images converts)
    _update(digest, "transform", repr(getattr(base, "transform", None)),
            "target_transform", repr(getattr(base, "target_transform", None)),
            "loader", f"{getattr(loader, '__module__', '')}.{getattr(loader, '__qualname__', '')}")
    if positions is not None:
        _update_tensor(digest, "subset indices", torch.tensor(positions, dtype=torch.int64))
    if cache_key is not None:
        _update(digest, "cache_key", cache_key)
    else:
        _update_contents(digest, base, positions)
    return digest.hexdigest()


# --- reading and writing the cache file ---------------------------------------------------


def _load_cache(path: Path, key: str) -> tuple[Tensor, Tensor] | None:
    """The saved (features, labels), or None; an unreadable file is moved aside, not fatal."""
    if not path.exists():
        return None
    try:
        saved = torch.load(path, weights_only=True)
        features, labels = saved["features"], saved["labels"]
        if saved.get("format") != CACHE_FORMAT or saved.get("key") != key:
            raise ValueError("it was saved for other inputs or by another labkit version")
        if features.ndim != 2 or labels.shape != features.shape[:1]:
            raise ValueError(f"shapes {tuple(features.shape)}, {tuple(labels.shape)} do not match")
        return features, labels
    except Exception as exc:  # a half-written or foreign file fails in many different ways
        corrupt = path.with_name(path.name + ".corrupt")
        os.replace(path, corrupt)
        warnings.warn(f"The feature cache {path} is corrupt or unreadable ({load_error_reason(exc)}"
                      f"); it was moved to {corrupt} and the features are extracted again. "
                      f"Fix: nothing to do; delete {corrupt} when you no longer need it.",
                      stacklevel=3)
        return None


def _save_cache(path: Path, features: Tensor, labels: Tensor, key: str) -> None:
    # Atomic: an interrupted run never leaves a half-written file under the real name.
    atomic_save({"features": features, "labels": labels, "key": key, "format": CACHE_FORMAT}, path)


# --- extraction ---------------------------------------------------------------------------


def _run_backbone(backbone: nn.Module, loader, device: torch.device) -> tuple[Tensor, Tensor]:
    was_training = backbone.training
    backbone.eval()  # dropout off, BatchNorm uses its running statistics
    features, labels = [], []
    try:
        with torch.inference_mode():
            for batch in loader:
                inputs, targets = split_batch(batch)
                outputs = run_model(backbone, to_device(inputs, device))
                features.append(outputs.flatten(1).float().cpu())  # (B, D)
                labels.append(torch.as_tensor(targets).long().cpu())  # (B,)
    finally:
        backbone.train(was_training)
    if not features:
        raise ValueError("The loader yielded no batches, so there is nothing to extract. "
                         "Fix: check that the dataset is not empty.")
    # Concatenated outside inference_mode: normal tensors that a head can train on.
    return torch.cat(features), torch.cat(labels)


def extract_features(backbone: nn.Module, loader, device: torch.device | str, *,
                     cache_dir: str | os.PathLike | None | bool = None,
                     cache_key: str | None = None,
                     refresh: bool = False) -> tuple[Tensor, Tensor]:
    """Run ``backbone`` once over ``loader``; return (features (N, D) float32, labels (N,) int64)
    on the CPU, saved on disk and reused while backbone, transform and data stay the same.

    ``cache_dir=None`` uses the course cache (LABKIT_DATA)/features; ``False`` switches the
    cache off. ``cache_key`` names data that labkit cannot fingerprint itself. ``refresh=True``
    extracts again and overwrites the saved file.
    """
    device = torch.device(device)
    path = key = None
    if cache_dir is not False:
        if cache_dir is None:
            cache_dir = cache_dirs()["course datasets (LABKIT_DATA)"] / "features"
        key = feature_cache_key(backbone, getattr(loader, "dataset", loader), cache_key)
        path = Path(cache_dir) / f"{type(backbone).__name__}-{key[:16]}.pt"
        cached = None if refresh else _load_cache(path, key)
        if cached is not None:
            print(f"labkit: features loaded from the cache {path}")
            return cached

    start = time.perf_counter()
    features, labels = _run_backbone(backbone, loader, device)
    seconds = time.perf_counter() - start
    if path is not None:
        _save_cache(path, features, labels, key)
    where = f"saved to {path}" if path is not None else "cache off"
    print(f"labkit: extracted {features.shape[0]} features of size {features.shape[1]} "
          f"in {seconds:.1f} s ({where})")
    return features, labels


# --- training on saved features -------------------------------------------------------------


class FeatureLoader:
    """Mini-batches of saved features, cut from whole tensors: no per-sample Python calls, so
    an epoch over 50,000 features takes milliseconds. Works wherever a DataLoader of
    (inputs, targets) does: ``for inputs, targets in loader`` and ``len(loader)``.

    Batches come out on the tensors' device. With ``shuffle`` the order is drawn again each
    epoch from ``generator``, or from torch's global RNG so ``torch.manual_seed`` repeats it.
    """

    def __init__(self, features: Tensor, labels: Tensor, *, batch_size: int,
                 shuffle: bool = False, generator: torch.Generator | None = None) -> None:
        if features.shape[:1] != labels.shape[:1]:
            raise ValueError(
                f"features {tuple(features.shape)} and labels {tuple(labels.shape)} have a "
                "different number of samples (first dimension). Fix: pass the features and "
                "labels that extract_features returned together."
            )
        if features.device != labels.device:
            raise ValueError(f"features are on {features.device} but labels on {labels.device}. "
                             "Fix: move both, e.g. features.to(device) and labels.to(device).")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a whole number of at least 1, got "
                             f"{batch_size!r}. Fix: pass for example batch_size=256.")
        self.features, self.labels = features, labels
        self.dataset = TensorDataset(features, labels)  # so len(loader.dataset) works too
        self.batch_size, self.shuffle, self.generator = batch_size, shuffle, generator

    def __len__(self) -> int:
        return math.ceil(self.features.shape[0] / self.batch_size)

    def __iter__(self):
        count = self.features.shape[0]
        if self.shuffle:  # one permutation per epoch, drawn where the generator lives
            rng_device = self.generator.device if self.generator is not None else "cpu"
            order = torch.randperm(count, generator=self.generator, device=rng_device)
            order = order.to(self.features.device)
        for start in range(0, count, self.batch_size):
            end = start + self.batch_size
            rows = order[start:end] if self.shuffle else slice(start, end)  # a slice copies nothing
            yield self.features[rows], self.labels[rows]

