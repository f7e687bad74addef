"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint holds the model, optimizer, scheduler and gradient-scaler states, the epoch,
the history so far, the best weights, and every random-number generator's state, so a
resumed run on the CPU repeats the uninterrupted run bit for bit.

Checkpoints are written atomically (a temporary file, then a rename), so a crash or an
interrupt never leaves a half-written file under the real name, and read back with
``torch.load(..., weights_only=True)``, which cannot run code hidden in a file.
"""

from __future__ import annotations

import os
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

__all__ = ["save_checkpoint", "load_checkpoint", "rng_state", "set_rng_state", "atomic_save",
           "load_error_reason"]

FORMAT = 1


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """torch.save to a temporary file in the same folder, then rename it into place.

    A process killed at any moment leaves the old file or the new one under ``path``, never
    half of one (at worst a stray ``.NAME.*.tmp`` beside it, which nothing reads).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())  # on disk before the rename, so a power cut cannot swap in half
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_error_reason(exc: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in one line. torch's own message for a
    file with Python objects in it suggests ``weights_only=False``: the one thing not to do."""
    unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    if unsafe:
        return (f"it holds a Python object ({unsafe.group(1)}) that could run code when loaded, "
                "so it was refused")
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


def _loader_generators(loader) -> dict[str, torch.Generator]:
    """Generators a DataLoader shuffles with, when it was given its own."""
    found = {}
    if getattr(loader, "generator", None) is not None:
        found["loader"] = loader.generator
    sampler = getattr(loader, "sampler", None)
    if getattr(sampler, "generator", None) is not None:
        found["sampler"] = sampler.generator
    return found


def rng_state(loader=None) -> dict:
    """Every generator's state as tensors and plain numbers (weights_only-safe)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": {"version": version, "internal": list(internal), "gauss": py_gauss},
        "loader": {name: g.get_state() for name, g in _loader_generators(loader).items()},
    }


def set_rng_state(state: dict, loader=None) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    for name, generator in _loader_generators(loader).items():
        if name in state["loader"]:
            generator.set_state(state["loader"][name])


def save_checkpoint(path, *, model, optimizer, scheduler, scaler, epoch: int, history_rows: list,
                    best: dict | None, bad_epochs: int, loader=None) -> Path:
    return atomic_save({
        "format": FORMAT,
        "model_class": type(model).__qualname__,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": epoch,
        "history": history_rows,
        "best": best,
        "bad_epochs": bad_epochs,
        "rng": rng_state(loader),
    }, path)


def _check_same_architecture(checkpoint: dict, model, path) -> None:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in checkpoint["model"].items()}
    if checkpoint["model_class"] == type(model).__qualname__ and expected == found:
        return
    missing = sorted(expected.keys() - found.keys())[:3]
    unexpected = sorted(found.keys() - expected.keys())[:3]
    reshaped = [k for k in expected.keys() & found.keys() if expected[k] != found[k]][:3]
    raise ValueError(
        f"{path} was written for a {checkpoint['model_class']} model, which does not match this "
        f"{type(model).__qualname__} (missing: {missing}, unexpected: {unexpected}, "
        f"different shapes: {reshaped}). Nothing was loaded. Fix: build the same architecture "
        f"(and head size) as the run that wrote the checkpoint, or train without resume=.")


def load_checkpoint(path, *, model, optimizer, scheduler, scaler, loader=None) -> dict:
    """Load a checkpoint into the given objects; return it (epoch, history, best...).

    Every check happens before anything is loaded, so a wrong file changes nothing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}. Fix: check the path, or train without resume=.")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = load_error_reason(exc)
        if reason.startswith("it holds"):
            raise ValueError(f"{path} was refused: {reason}. Nothing was loaded. Fix: resume from a "
                             "checkpoint written by fit(..., checkpoint=...), yours or from someone "
                             "you trust, or train without resume=.") from None
        raise ValueError(f"{path} is not a readable labkit checkpoint ({reason}). Fix: resume "
                         "from another checkpoint, or train without resume=.") from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise ValueError(f"{path} is not a labkit checkpoint (format {FORMAT}). "
                         "Fix: resume from a file written by fit(..., checkpoint=...).")
    _check_same_architecture(checkpoint, model, path)
    if (checkpoint["scheduler"] is None) != (scheduler is None) or \
            (checkpoint["scaler"] is None) != (scaler is None):
        raise ValueError(f"{path} was written with a different scheduler or mixed-precision setting. "
                         "Fix: pass the same scheduler= and amp= as the run that wrote it.")
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
    if scaler is not None:
        scaler.load_state_dict(checkpoint["scaler"])
    set_rng_state(checkpoint["rng"], loader)
    return checkpoint
