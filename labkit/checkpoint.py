"""Checkpoints: all ``fit(..., resume=path)`` needs to continue exactly where it stopped, torch's
random generators included. Written with ``atomic_write`` (a crash leaves the previous file whole),
read with ``weights_only=True`` (which runs no code), checked before anything is loaded. Lesson 06.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import torch

from labkit import distributed
from labkit.files import atomic_write

__all__ = ["TrainingState", "save_checkpoint", "load_checkpoint", "check_writable",
           "load_error_reason", "CheckpointError"]

FORMAT = 2


class CheckpointError(OSError):
    """A checkpoint that cannot be written; the message names the path and the fix."""


class TrainingState:
    """What a checkpoint holds, and the best weights so far: ``fit`` keeps one per run."""

    def __init__(self, model, optimizer, scheduler, scaler, loader, history, restore_best):
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.scaler, self.loader, self.history = scaler, loader, history
        self.restore_best, self.best_weights = restore_best, None

    def resume(self, path) -> int:
        """Load the checkpoint at ``path`` into this run; returns the epoch to start from."""
        saved = load_checkpoint(path, model=self.model, optimizer=self.optimizer,
                                scheduler=self.scheduler, scaler=self.scaler, loader=self.loader)
        self.history.rows = list(saved["history"])
        if saved["best"] is not None:
            self.history.best_epoch, self.history.best_value, self.best_weights = saved["best"]
        if distributed.rank() == 0:
            print(f"labkit: resumed from {path} after epoch {saved['epoch']}")
        return saved["epoch"] + 1

    def keep_weights_if_best(self, epoch: int) -> None:
        if self.history.best_epoch == epoch:
            self.best_weights = {k: v.detach().to("cpu", copy=True)
                                 for k, v in self.model.state_dict().items()}

    def save(self, path, epoch: int) -> None:
        """Process 0 writes the checkpoint; the others wait until the file is whole."""
        if distributed.rank() == 0:
            save_checkpoint(path, self, epoch)
        distributed.barrier()

    def finish(self, restore: bool = False) -> str:
        """Puts the best weights back if ``restore_best`` or ``restore``; says which it has."""
        if not (self.restore_best or restore) or self.best_weights is None:
            return "The model keeps its last weights."
        self.model.load_state_dict(self.best_weights)
        return (f"Restored the best weights: epoch {self.history.best_epoch}, "
                f"{self.history.monitor} {self.history.best_value:.4g}.")


def load_error_reason(exc: BaseException) -> str:
    """Why ``torch.load(..., weights_only=True)`` failed, in one line (torch's own message
    suggests ``weights_only=False``: the one thing not to do)."""
    unsafe = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
    if unsafe:
        return f"it holds a Python object ({unsafe.group(1)}) that could run code when loaded"
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0]}"


def _generators(loader) -> dict:
    """The generators a DataLoader (or its sampler) was given to shuffle with."""
    owners = {"loader": loader, "sampler": getattr(loader, "sampler", None)}
    return {name: owner.generator for name, owner in owners.items()
            if getattr(owner, "generator", None) is not None}


def check_writable(path) -> None:
    """A CheckpointError with the fix unless a real temporary file can be made beside ``path``."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint={str(path)!r} is a folder, not a file. Fix: name a "
                              f"file in it, e.g. checkpoint={str(path / 'run.pt')!r}.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"):
            pass
    except OSError as error:
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
        why = f"{blocker} is a file, not a folder" if blocker else (
            f"the folder {path.parent} is read-only for you ({error.strerror or error})")
        raise CheckpointError(
            f"Cannot write the checkpoint {path}: {why}. Fix: pass checkpoint= a file in a folder "
            f"you can write, e.g. 'checkpoints/{path.name}'.") from None


def save_checkpoint(path, state: TrainingState, epoch: int) -> Path:
    """Write a checkpoint atomically; a failed write is a CheckpointError and keeps the old one."""
    had_one, history, scheduler = Path(path).is_file(), state.history, state.scheduler
    content = {
        "format": FORMAT, "epoch": epoch, "history": history.rows,
        "best": state.best_weights and (history.best_epoch, history.best_value, state.best_weights),
        "model_class": type(state.model).__qualname__, "model": state.model.state_dict(),
        "optimizer_class": type(state.optimizer).__qualname__,
        "optimizer_shapes": _shapes(state.optimizer), "optimizer": state.optimizer.state_dict(),
        "scheduler_class": scheduler and type(scheduler).__qualname__,
        "scheduler": scheduler and scheduler.state_dict(),
        "scaler": state.scaler.state_dict() if state.scaler.is_enabled() else None,
        "rng": {"torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                "loader": {k: g.get_state() for k, g in _generators(state.loader).items()}}}
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
    ours, theirs = ({k: tuple(v.shape) for k, v in sd.items()}
                    for sd in (model.state_dict(), saved["model"]))
    if saved["model_class"] != type(model).__qualname__ or ours != theirs:
        differ = sorted(set(ours.items()) ^ set(theirs.items()))[:3]
        return (f"was written for a {saved['model_class']} model, which does not match this "
                f"{type(model).__qualname__} (weights that differ: {differ}). Nothing was loaded."
                f" Fix: build the same architecture (and head size) as the run that wrote it")
    kind, shapes = saved.get("optimizer_class"), saved.get("optimizer_shapes")
    if (kind, shapes) != (type(optimizer).__qualname__, _shapes(optimizer)):
        return (f"was written with {kind or 'another optimizer'} over parameter groups of "
                f"{[len(g) for g in shapes or []]} tensors; this run has "
                f"{type(optimizer).__qualname__} over {[len(g) for g in _shapes(optimizer)]}. "
                f"Nothing was loaded. Fix: resume with the same optimizer type over the same "
                f"trainable parameters (freeze and unfreeze as the run that wrote it did)")
    if (saved["scheduler_class"] != (scheduler and type(scheduler).__qualname__)
            or (saved["scaler"] is None) == scaler.is_enabled()):
        return ("was written with another scheduler or mixed-precision setting. Nothing was "
                "loaded. Fix: pass the same scheduler= and amp= as the run that wrote it")
    return None


def _shapes(optimizer) -> list[list[list[int]]]:
    """The shape of each parameter in each of the optimizer's groups."""
    return [[list(p.shape) for p in group["params"]] for group in optimizer.param_groups]


def load_checkpoint(path, *, model, optimizer, scheduler=None, scaler=None, loader=None) -> dict:
    """Load a checkpoint into the given objects and return it; refuse one that does not fit."""
    path, scaler = Path(path), scaler or torch.amp.GradScaler("cpu", enabled=False)
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = load_error_reason(exc)
        unsafe = reason.startswith("it holds")  # torch's own message says weights_only=False
        what = "was refused" if unsafe else "is not a readable labkit checkpoint"
        raise ValueError(f"{path} {what}: {reason}. Nothing was loaded. Fix: resume from a "
                         "checkpoint written by fit(..., checkpoint=...) that you trust, or train "
                         "without resume=.") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise ValueError(f"{path} is not a labkit checkpoint of this version (format {FORMAT}). "
                         "Fix: resume from a file written by fit(..., checkpoint=...).")
    problem = _mismatch(saved, model, optimizer, scheduler, scaler)
    if problem:
        raise ValueError(f"{path} {problem}, or train without resume=.")
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    for target, name in ((scheduler, "scheduler"), (scaler, "scaler")):
        if saved[name] is not None:
            target.load_state_dict(saved[name])
    torch.set_rng_state(saved["rng"]["torch"])
    if saved["rng"]["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(saved["rng"]["cuda"])
    for name, generator in _generators(loader).items():
        generator.set_state(saved["rng"]["loader"].get(name, generator.get_state()))
    return saved
