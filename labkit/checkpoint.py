"""Checkpoints: all ``fit(..., resume=path)`` needs to continue exactly where it stopped. Lesson 06.

A checkpoint holds the model, optimizer, scheduler and scaler states, the history, the best
weights and every random generator's state, so a resumed run on the CPU repeats an uninterrupted
one bit for bit. It is written with ``labkit.files.atomic_write`` (a crash leaves the previous
file whole) and read with ``torch.load(..., weights_only=True)``, which runs no code. Resuming
checks the file against the model and optimizer before anything is loaded.
"""

from __future__ import annotations

import os
import random
import re
import tempfile
from pathlib import Path

import numpy as np
import torch

from labkit import distributed
from labkit.files import atomic_write

__all__ = ["TrainingState", "save_checkpoint", "load_checkpoint", "check_writable",
           "load_error_reason", "CheckpointError"]

FORMAT = 1


class CheckpointError(OSError):
    """A checkpoint that cannot be written; the message names the path and the fix."""


class TrainingState:
    """What a checkpoint holds, and the best weights so far: ``fit`` keeps one per run."""

    def __init__(self, model, optimizer, scheduler, scaler, loader, history, restore_best):
        self.model, self.optimizer, self.scheduler, self.scaler = model, optimizer, scheduler, scaler
        self.loader, self.history, self.restore_best, self.best_weights = (loader, history,
                                                                           restore_best, None)

    def resume(self, path) -> int:
        """Load the checkpoint at ``path`` into this run; returns the epoch to start from."""
        saved = load_checkpoint(path, model=self.model, optimizer=self.optimizer,
                                scheduler=self.scheduler, scaler=self.scaler, loader=self.loader)
        self.history.rows = list(saved["history"])
        if saved["best"] is not None:
            best = saved["best"]
            self.history.best_epoch, self.history.best_value = best["epoch"], best["value"]
            self.best_weights = best["state"]
        if distributed.is_main_process():
            print(f"labkit: resumed from {path} after epoch {saved['epoch']}")
        return saved["epoch"] + 1

    def keep_weights_if_best(self, epoch: int) -> None:
        if self.history.best_epoch == epoch:
            self.best_weights = {k: v.detach().to("cpu", copy=True)
                                 for k, v in self.model.state_dict().items()}

    def save(self, path, epoch: int) -> None:
        """Process 0 writes the checkpoint; the others wait until the file is whole."""
        if distributed.is_main_process():
            save_checkpoint(path, self, epoch)
        distributed.barrier()

    def finish(self) -> str:
        """Puts the best weights back if ``restore_best``; says which weights the model has."""
        if not self.restore_best or self.best_weights is None:
            return "The model keeps its last weights."
        self.model.load_state_dict(self.best_weights)
        return (f"Restored the best weights: epoch {self.history.best_epoch}, "
                f"{self.history.monitor} {self.history.best_value:.4g}.")


def load_error_reason(exc: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in one line (torch's own message
    suggests ``weights_only=False``: the one thing not to do)."""
    unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    if unsafe:
        return (f"it holds a Python object ({unsafe.group(1)}) that could run code when loaded, "
                "so it was refused")
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


def _generators(loader) -> dict:
    """The generators a DataLoader shuffles with, when it was given its own."""
    owners = {"loader": loader, "sampler": getattr(loader, "sampler", None)}
    return {name: owner.generator for name, owner in owners.items()
            if getattr(owner, "generator", None) is not None}


def _rng_state(loader) -> dict:
    """Every generator's state as tensors and plain numbers (weights_only-safe)."""
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, py_gauss = random.getstate()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                      "has_gauss": int(has_gauss), "gauss": float(gauss)},
            "python": {"version": version, "internal": list(internal), "gauss": py_gauss},
            "loader": {name: g.get_state() for name, g in _generators(loader).items()}}


def _set_rng_state(state: dict, loader) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    n, p = state["numpy"], state["python"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["gauss"]))
    random.setstate((p["version"], tuple(p["internal"]), p["gauss"]))
    for name, generator in _generators(loader).items():
        generator.set_state(state["loader"].get(name, generator.get_state()))


def check_writable(path) -> Path:
    """``path`` if a checkpoint can be written there (a real temporary file is made beside it,
    then removed), else a CheckpointError with the fix."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint={str(path)!r} is a folder, not a file. Fix: name a "
                              f"file in it, e.g. checkpoint={str(path / 'run.pt')!r}.")
    fix = f"Fix: pass checkpoint= a file in a folder you can write, e.g. 'checkpoints/{path.name}'."
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise CheckpointError(f"Cannot write the checkpoint {path}: {blocker} is a file, not a "
                              f"folder. {fix}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"):
            pass
    except OSError as error:
        raise CheckpointError(f"Cannot write the checkpoint {path}: the folder {path.parent} is "
                              f"read-only for you ({error.strerror or error}). {fix}") from None
    return path


def save_checkpoint(path, state: TrainingState, epoch: int) -> Path:
    """Write a checkpoint atomically; a failed write is a CheckpointError naming ``path``, and
    the previous checkpoint, if any, stays as it was."""
    had_one, history, optimizer, scheduler = (Path(path).is_file(), state.history,
                                              state.optimizer, state.scheduler)
    content = {
        "format": FORMAT, "epoch": epoch, "history": history.rows, "rng": _rng_state(state.loader),
        "best": None if state.best_weights is None else {
            "epoch": history.best_epoch, "value": history.best_value, "state": state.best_weights},
        "model_class": type(state.model).__qualname__, "model": state.model.state_dict(),
        "optimizer_class": type(optimizer).__qualname__, "optimizer": optimizer.state_dict(),
        "scheduler_class": scheduler and type(scheduler).__qualname__,
        "scheduler": scheduler and scheduler.state_dict(),
        "scaler": state.scaler.state_dict() if state.scaler.is_enabled() else None}
    try:
        return atomic_write(path, lambda file: torch.save(content, file))
    except (OSError, RuntimeError) as error:
        cause = error  # torch's writer reports a failed write as a RuntimeError around it
        while cause is not None and not isinstance(cause, OSError):
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        kept = "The previous checkpoint there is unchanged." if had_one else "None was written."
        raise CheckpointError(
            f"Could not write the checkpoint {path} after epoch {epoch}: {cause.strerror or cause}."
            f" {kept} The model in memory keeps its weights. Fix: free space on that disk (or "
            f"raise the file-size limit, ulimit -f), or pass checkpoint= a file on another disk; "
            f"fit(..., resume=...) continues from the last checkpoint.") from error


def _mismatch(saved: dict, model, optimizer, scheduler, scaler) -> str | None:
    """What in the file does not fit this run, with the fix; None if it all fits."""
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in saved["model"].items()}
    if saved["model_class"] != type(model).__qualname__ or ours != theirs:
        return (f"was written for a {saved['model_class']} model, which does not match this "
                f"{type(model).__qualname__} (missing: {sorted(ours.keys() - theirs.keys())[:3]}, "
                f"unexpected: {sorted(theirs.keys() - ours.keys())[:3]}, different shapes: "
                f"{[k for k in ours.keys() & theirs.keys() if ours[k] != theirs[k]][:3]}). Nothing"
                f" was loaded. Fix: build the same architecture (and head size) as the run that "
                f"wrote it")
    state, groups = saved["optimizer"]["state"], saved["optimizer"]["param_groups"]
    kind = saved.get("optimizer_class")  # older files: each optimizer has its own settings
    same_kind = kind == type(optimizer).__qualname__ if kind else all(
        set(old) <= set(new) for old, new in zip(groups, optimizer.state_dict()["param_groups"]))
    sizes, our_sizes = ([len(g["params"]) for g in gs] for gs in (groups, optimizer.param_groups))
    shapes_fit = all(not isinstance(v, torch.Tensor) or not v.ndim or v.shape == param.shape
                     for old, new in zip(groups, optimizer.param_groups)
                     for index, param in zip(old["params"], new["params"])
                     for v in state.get(index, {}).values())  # momentum, running averages
    if not (same_kind and sizes == our_sizes and shapes_fit):
        return (f"was written with {kind or 'another optimizer'} over parameter groups of {sizes}"
                f" tensors; this run has {type(optimizer).__qualname__} over {our_sizes}. Nothing "
                f"was loaded. Fix: resume with the same optimizer type over the same trainable "
                f"parameters (freeze and unfreeze as the run that wrote it did)")
    if (saved["scheduler_class"] != (scheduler and type(scheduler).__qualname__)
            or (saved["scaler"] is None) == scaler.is_enabled()):
        return ("was written with another scheduler or mixed-precision setting. Nothing was "
                "loaded. Fix: pass the same scheduler= and amp= as the run that wrote it")
    return None


def load_checkpoint(path, *, model, optimizer, scheduler=None, scaler=None, loader=None) -> dict:
    """Load a checkpoint into the given objects and return it; one that does not fit them is
    refused before anything changes."""
    path, scaler = Path(path), scaler or torch.amp.GradScaler("cpu", enabled=False)
    if not path.is_file():
        raise FileNotFoundError(f"No checkpoint at {path}. Fix: check the path, or train "
                                "without resume=.")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = load_error_reason(exc)
        if reason.startswith("it holds"):
            raise ValueError(f"{path} was refused: {reason}. Nothing was loaded. Fix: resume from "
                             "a checkpoint written by fit(..., checkpoint=...), yours or from "
                             "someone you trust, or train without resume=.") from None
        raise ValueError(f"{path} is not a readable labkit checkpoint ({reason}). Fix: resume "
                         "from another checkpoint, or train without resume=.") from exc
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{path} is not a labkit checkpoint (format {FORMAT}). "
                         "Fix: resume from a file written by fit(..., checkpoint=...).")
    problem = _mismatch(saved, model, optimizer, scheduler, scaler)
    if problem:
        raise ValueError(f"{path} {problem}, or train without resume=.")
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    for target, name in ((scheduler, "scheduler"), (scaler, "scaler")):
        if saved[name] is not None:
            target.load_state_dict(saved[name])
    _set_rng_state(saved["rng"], loader)
    return saved
