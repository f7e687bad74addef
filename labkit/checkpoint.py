"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint holds the model, optimizer, scheduler and gradient-scaler states, the epoch,
the history so far, the best weights, and every random-number generator's state, so a
resumed run on the CPU repeats the uninterrupted run bit for bit.

Checkpoints are written atomically (a temporary file, then a rename), so a crash or an
interrupt never leaves a half-written file under the real name, and read back with
``torch.load(..., weights_only=True)``, which cannot run code hidden in a file.

``check_writable`` tells before training whether a checkpoint can be written at a path (not a
folder, not under a file, not in a read-only folder); a write that fails all the same (a full
disk, a file-size limit) is a ``CheckpointError`` naming the path, and the previous checkpoint
stays. Resuming checks the model, the optimizer (its type and its parameter groups) and the
scheduler against the file before anything is loaded.
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
           "load_error_reason", "check_writable", "CheckpointError"]

FORMAT = 1


class CheckpointError(OSError):
    """A checkpoint that cannot be written; the message names the path and the fix."""


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


def check_writable(path) -> Path:
    """``path`` if a checkpoint can be written there, else a CheckpointError with the fix.

    Creates the missing folders and a temporary file beside ``path`` (then removes it): the
    one test that sees read-only folders, mounts and permissions as the real write will.
    """
    path = Path(path)
    fix = (f"Fix: pass checkpoint= a file in a folder you can write, e.g. "
           f"checkpoint='checkpoints/{path.name or 'run.pt'}'.")
    if path.is_dir():
        raise CheckpointError(f"checkpoint={str(path)!r} is a folder, not a file. Fix: name a "
                              f"file in it, e.g. checkpoint={str(path / 'run.pt')!r}.")
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise CheckpointError(f"Cannot write the checkpoint {path}: {blocker} is a file, not a "
                              f"folder. {fix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise CheckpointError(f"Cannot write the checkpoint {path}: the folder {path.parent} is "
                              f"read-only for you ({error.strerror or error}). {fix}") from None
    return path


def _os_error_in(error: BaseException) -> OSError | None:
    """The OSError behind ``error``: torch's writer reports a failed write as a RuntimeError."""
    while error is not None and not isinstance(error, OSError):
        error = error.__cause__ or error.__context__
    return error


def save_checkpoint(path, *, model, optimizer, scheduler, scaler, epoch: int, history_rows: list,
                    best: dict | None, bad_epochs: int, loader=None) -> Path:
    """Write a checkpoint atomically; a failed write is a CheckpointError naming ``path``, and
    the previous checkpoint, if any, is left as it was."""
    had_one = Path(path).is_file()
    try:
        return atomic_save({
            "format": FORMAT,
            "model_class": type(model).__qualname__,
            "optimizer_class": type(optimizer).__qualname__,
            "scheduler_class": type(scheduler).__qualname__ if scheduler is not None else None,
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
    except (OSError, RuntimeError) as error:
        cause = _os_error_in(error)
        if cause is None:
            raise
        kept = ("The previous checkpoint there is unchanged." if had_one
                else "No checkpoint was written.")
        raise CheckpointError(
            f"Could not write the checkpoint {path} after epoch {epoch}: "
            f"{cause.strerror or cause}. {kept} The model in memory keeps its weights. "
            f"Fix: free space on that disk (or raise the file-size limit, ulimit -f), or pass "
            f"checkpoint= a file on another disk; fit(..., resume=...) continues from the "
            f"last checkpoint.") from error


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


def _same_state_shapes(saved: dict, optimizer) -> bool:
    """Whether each saved per-parameter state (momentum, Adam's averages) fits its parameter."""
    for saved_group, group in zip(saved["param_groups"], optimizer.param_groups):
        for index, param in zip(saved_group["params"], group["params"]):
            for value in saved["state"].get(index, {}).values():
                if isinstance(value, torch.Tensor) and value.ndim and value.shape != param.shape:
                    return False
    return True


def _check_same_optimizer(checkpoint: dict, optimizer, path) -> None:
    """The optimizer's type and parameter groups against the file's, before anything loads:
    torch itself would fail only at the first step (KeyError: 'momentum'), or never."""
    saved = checkpoint["optimizer"]
    saved_type = checkpoint.get("optimizer_class")  # absent from older checkpoints
    if saved_type:
        same_type = saved_type == type(optimizer).__qualname__
    else:  # each type has its own settings (momentum, betas...); newer torch may add some
        same_type = all(set(old) <= set(new) for old, new in
                        zip(saved["param_groups"], optimizer.state_dict()["param_groups"]))
    sizes = [len(group["params"]) for group in saved["param_groups"]]
    ours = [len(group["params"]) for group in optimizer.param_groups]
    if same_type and sizes == ours and _same_state_shapes(saved, optimizer):
        return
    raise ValueError(
        f"{path} was written with {saved_type or 'another optimizer'} over parameter groups of "
        f"{sizes} tensors; this run has {type(optimizer).__qualname__} over {ours}. Nothing was "
        f"loaded. Fix: resume with the same optimizer type over the same trainable parameters "
        f"(freeze and unfreeze as the run that wrote it did), or train without resume=.")


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
    _check_same_optimizer(checkpoint, optimizer, path)
    saved_scheduler = checkpoint.get("scheduler_class")  # absent from older checkpoints
    if (checkpoint["scheduler"] is None) != (scheduler is None) or \
            (checkpoint["scaler"] is None) != (scaler is None) or \
            (saved_scheduler and saved_scheduler != type(scheduler).__qualname__):
        raise ValueError(f"{path} was written with a different scheduler or mixed-precision "
                         "setting. Nothing was loaded. Fix: pass the same scheduler= and amp= as "
                         "the run that wrote it.")
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(checkpoint["scheduler"])
    if scaler is not None:
        scaler.load_state_dict(checkpoint["scaler"])
    set_rng_state(checkpoint["rng"], loader)
    return checkpoint
