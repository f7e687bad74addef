"""The course's training loop, in one place you can read: ``fit`` and what it calls.

Lesson 01 writes this loop out by hand; afterwards lessons call ``fit``, whose body uses
the same names in the same order, so ``fit??`` reads like the lesson. What ``fit`` adds
is visible in its body: mixed precision on CUDA, gradient accumulation and clipping, a
learning-rate scheduler, early stopping with the best weights restored, checkpoints that
``fit(..., resume=path)`` continues from, and a clean stop when you interrupt the kernel.
Mistakes stop it early with the fix named: a head whose size does not match the data's
classes, a loss that becomes NaN (and whether the inputs were NaN already), batches too big for
the GPU's memory; and before the first epoch: a training loader with no batches, a model with
nothing to train, a checkpoint path that cannot be written.

Speed: the loop never calls ``.item()`` per batch (that would make the CPU wait for the
GPU every step); losses are summed on the device and read only when the progress bar
refreshes, at most twice a second, and at the end of an epoch.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

import torch
from torch import nn
from tqdm.auto import tqdm

from labkit.batches import run_model, split_batch, to_device
from labkit import distributed
from labkit.checkpoint import check_writable, load_checkpoint, save_checkpoint
from labkit.transfer import aux_loss, train_mode
from labkit.viz import LivePlot

__all__ = ["fit", "train_one_epoch", "evaluate", "predict", "History", "Predictions",
           "mixed_precision", "EVENTS"]

EVENTS = ("fit_start", "batch_end", "epoch_end", "fit_end")
REFRESH_SECONDS = 0.5  # how often the progress bar reads the running loss from the device


class NonFiniteLoss(FloatingPointError):
    pass


@dataclass
class History:
    """One row per finished epoch: epoch, train_loss, train_accuracy, val_loss, val_accuracy, lr, seconds."""

    rows: list[dict] = field(default_factory=list)
    monitor: str = "val_loss"
    best_epoch: int | None = None
    best_value: float | None = None
    stopped_early: bool = False
    interrupted: bool = False

    def __getitem__(self, key: str) -> list:
        return [row.get(key) for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def is_better(self, value: float) -> bool:
        if self.best_value is None:
            return not math.isnan(value)
        # Losses should go down; accuracies and other scores up.
        return value < self.best_value if "loss" in self.monitor else value > self.best_value

    def _columns(self) -> list[str]:
        """The recorded keys that have a value in some row (no val_* columns without a val_loader)."""
        return [k for k in self.rows[0] if any(r.get(k) is not None for r in self.rows)] if self.rows else []

    def __str__(self) -> str:
        keys = self._columns()
        lines = ["  ".join(f"{k:>14}" for k in keys)]
        for row in self.rows:
            lines.append("  ".join(f"{_fmt(row.get(k)):>14}" for k in keys))
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        keys = self._columns()
        head = "".join(f"<th>{k}</th>" for k in keys)
        body = "".join("<tr>" + "".join(f"<td>{_fmt(r.get(k))}</td>" for k in keys) + "</tr>"
                       for r in self.rows)
        return f"<table class='lk-history'><tr>{head}</tr>{body}</table>"


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


class Predictions(NamedTuple):
    logits: torch.Tensor   # (N, C)
    preds: torch.Tensor    # (N,)
    targets: torch.Tensor  # (N,)


# --- small pieces the loop is made of ---------------------------------------------------------


def mixed_precision(device: torch.device, amp: bool = True):
    """(autocast dtype or None, GradScaler or None): bf16 where the GPU has it, else fp16 with
    a scaler that keeps small gradients from rounding to zero. On CPU and MPS: off."""
    if not amp or device.type != "cuda":
        return None, None
    if torch.cuda.is_bf16_supported():
        return torch.bfloat16, None
    return torch.float16, torch.amp.GradScaler("cuda")


def _declared_classes(loader) -> list | None:
    """The class names the loader's dataset declares (``.classes``, as ImageFolder has), under
    any Subset; None when it declares none (a TensorDataset)."""
    dataset = getattr(loader, "dataset", None)
    while isinstance(dataset, torch.utils.data.Subset):
        dataset = dataset.dataset
    classes = getattr(dataset, "classes", None)
    return list(classes) if isinstance(classes, (list, tuple)) and classes else None


def _check_first_batch(logits: torch.Tensor, targets: torch.Tensor, classes=None) -> None:
    """Shape mistakes caught on the first batch, with the shapes named (one sync, once)."""
    if logits.ndim != 2 or targets.ndim != 1 or logits.shape[0] != targets.shape[0]:
        raise ValueError(
            f"The model returned logits of shape {tuple(logits.shape)} for targets of shape "
            f"{tuple(targets.shape)}; a classifier needs (batch, num_classes) and (batch,). "
            "Fix: check the model's last layer and that each label is one class index.")
    if targets.dtype.is_floating_point:
        raise ValueError(f"Targets are {targets.dtype}; cross-entropy needs class indices. "
                         "Fix: make the labels integers (torch.long).")
    top = int(targets.max())
    if top >= logits.shape[1] or int(targets.min()) < 0:
        raise ValueError(f"A target is class {top}, but the model has {logits.shape[1]} outputs. "
                         f"Fix: replace_head(model, num_classes={top + 1}) or check the labels.")
    if classes is not None and len(classes) != logits.shape[1]:
        shown = ", ".join(map(str, classes[:5])) + (", ..." if len(classes) > 5 else "")
        raise ValueError(f"The data has {len(classes)} classes ({shown}) but the model has "
                         f"{logits.shape[1]} outputs. Fix: replace_head(model, "
                         f"num_classes={len(classes)}), or train on the data the head was made for.")


def _optimizer_step(model, optimizer, scaler, max_grad_norm) -> None:
    if scaler is not None:
        scaler.unscale_(optimizer)  # clip the true gradients, not the scaled ones
    if max_grad_norm is not None:
        nn.utils.clip_grad_norm_([p for p in model.parameters() if p.grad is not None], max_grad_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _step_scheduler(scheduler, metric: float | None) -> None:
    if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        scheduler.step(metric)
    else:
        scheduler.step()


# --- one epoch of training, and evaluation --------------------------------------------------


def train_one_epoch(model, train_loader, optimizer, loss_fn, device, *, epoch: int = 1,
                    amp_dtype=None, scaler=None, accumulate: int = 1, max_grad_norm=None,
                    batch_scheduler=None, bar=None, stop: Callable[[], bool] = lambda: False,
                    on_batch_end: Callable | None = None) -> dict:
    """Train for one pass over train_loader; returns {"loss", "accuracy", "batches"}."""
    train_mode(model)  # model.train(), but frozen BatchNorm layers keep their statistics
    num_batches, classes = len(train_loader), _declared_classes(train_loader)
    loss_sum = torch.zeros((), device=device)                 # summed on the device: no sync
    correct = torch.zeros((), device=device, dtype=torch.long)
    bad_step = torch.full((), -1, device=device, dtype=torch.long)  # first non-finite loss
    bad_input_step = torch.full((), -1, device=device, dtype=torch.long)  # first NaN/inf input
    seen, last_refresh = 0, time.monotonic()
    optimizer.zero_grad(set_to_none=True)
    for step, batch in enumerate(train_loader):
        inputs, targets = split_batch(batch)
        inputs, targets = to_device(inputs, device), targets.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            outputs = run_model(model, inputs)
            if step == 0:  # before the loss, whose own message would not name the fix
                _check_first_batch(getattr(outputs, "logits", outputs), targets, classes)
            loss, logits = aux_loss(outputs, targets, loss_fn)
        scaled = loss / accumulate
        (scaler.scale(scaled) if scaler is not None else scaled).backward()
        if (step + 1) % accumulate == 0 or step + 1 == num_batches:
            _optimizer_step(model, optimizer, scaler, max_grad_norm)
            if batch_scheduler is not None:
                batch_scheduler.step()

        batch_size = targets.shape[0]
        loss_sum += loss.detach().float() * batch_size
        correct += (logits.detach().argmax(dim=1) == targets).sum()
        seen += batch_size
        bad_step = torch.where((bad_step < 0) & ~torch.isfinite(loss.detach()), step, bad_step)
        bad_input_step = torch.where((bad_input_step < 0) & _nonfinite(inputs, device), step,
                                     bad_input_step)
        if bar is not None:
            bar.update(1)
        if time.monotonic() - last_refresh > REFRESH_SECONDS:  # the only syncs in the loop
            if not distributed.is_distributed():  # under torchrun every process checks at the end
                _raise_if_nonfinite(bad_step, bad_input_step, epoch, optimizer)
            if bar is not None:
                bar.set_postfix(epoch=epoch, loss=f"{loss_sum.item() / seen:.4f}", refresh=False)
            last_refresh = time.monotonic()
        if on_batch_end is not None and on_batch_end(step, num_batches, loss.detach()):
            break
        if stop():
            break
    batches = step + 1 if seen else 0
    if distributed.is_distributed():  # every process's sums, and the first bad batch of any
        seen_all = torch.tensor(seen, device=device, dtype=torch.long)
        distributed.all_reduce_sum(loss_sum, correct, seen_all)
        bad_step, bad_input_step = map(_earliest_of_all_processes, (bad_step, bad_input_step))
        seen = int(seen_all)
    _raise_if_nonfinite(bad_step, bad_input_step, epoch, optimizer)
    return {"loss": loss_sum.item() / max(seen, 1),
            "accuracy": correct.item() / max(seen, 1),
            "batches": batches}


def _nonfinite(inputs, device) -> torch.Tensor:
    """True, as a tensor on the device (no sync), when a floating-point input holds NaN or inf."""
    tensors = inputs.values() if isinstance(inputs, dict) else [inputs]
    flag = torch.zeros((), dtype=torch.bool, device=device)
    for tensor in tensors:
        if isinstance(tensor, torch.Tensor) and tensor.is_floating_point():
            flag |= ~torch.isfinite(tensor).all()
    return flag


def _earliest_of_all_processes(step: torch.Tensor) -> torch.Tensor:
    """Under torchrun: the smallest step any process recorded (-1 where none did)."""
    none = torch.iinfo(torch.long).max
    earliest = torch.where(step < 0, none, step)
    torch.distributed.all_reduce(earliest, op=torch.distributed.ReduceOp.MIN)
    return torch.where(earliest == none, -1, earliest)


def _raise_if_nonfinite(bad_step: torch.Tensor, bad_input_step: torch.Tensor, epoch: int,
                        optimizer) -> None:
    step, input_step = int(bad_step), int(bad_input_step)
    if step < 0:
        return
    if 0 <= input_step <= step:  # the data was NaN before the loss was: not the learning rate
        raise NonFiniteLoss(
            f"The inputs of epoch {epoch}, batch {input_step + 1} hold NaN or infinite values, "
            f"so the loss became NaN or infinite. Fix: clean the data (missing values, a "
            f"division by zero in a transform or a normalisation with std 0); "
            f"torch.isfinite(x).all() finds the samples.")
    lr = optimizer.param_groups[0]["lr"]
    raise NonFiniteLoss(
        f"The loss became NaN or infinite at epoch {epoch}, batch {step + 1} (lr={lr:.1e}). "
        f"Fix: lower the learning rate, for example lr={lr / 10:.1e}, or clip gradients "
        "with max_grad_norm=1.0.")


@torch.no_grad()
def _run_eval(model, loader, device, amp: bool):
    """Yields (logits, targets) per batch in eval mode, restoring the mode afterwards."""
    was_training = model.training
    model.eval()
    amp_dtype, _ = mixed_precision(device, amp)
    try:
        for batch in loader:
            inputs, targets = split_batch(batch)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                outputs = run_model(model, to_device(inputs, device))
            logits = outputs.logits if hasattr(outputs, "logits") else outputs
            yield logits.float(), targets.to(device, non_blocking=True)
    finally:
        model.train(was_training)


def evaluate(model, loader, device, *, loss_fn=None, amp: bool = True) -> dict:
    """Mean loss and accuracy over a loader, without gradients, in eval mode."""
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for logits, targets in _run_eval(model, loader, torch.device(device), amp):
        loss_sum += loss_fn(logits, targets).float() * targets.shape[0]
        correct += (logits.argmax(dim=1) == targets).sum()
        seen += targets.shape[0]
    if distributed.is_distributed():  # each process saw its shard: add them up
        seen_all = torch.tensor(seen, device=device, dtype=torch.long)
        distributed.all_reduce_sum(loss_sum, correct, seen_all)
        seen = int(seen_all)
    if seen == 0:
        raise ValueError("The evaluation loader yielded no batches. Fix: check the dataset is not empty.")
    return {"loss": loss_sum.item() / seen, "accuracy": correct.item() / seen}


def predict(model, loader, device, *, amp: bool = True) -> Predictions:
    """Logits, predicted classes and targets for a whole loader, on the CPU."""
    pairs = [(logits.cpu(), targets.cpu()) for logits, targets in
             _run_eval(model, loader, torch.device(device), amp)]
    logits = torch.cat([p[0] for p in pairs])
    return Predictions(logits, logits.argmax(dim=1), torch.cat([p[1] for p in pairs]))


# --- running out of device memory --------------------------------------------------------------


@contextmanager
def _name_a_smaller_batch(loader, accumulate: int | None = None):
    """Turns running out of GPU (or MPS) memory into an error that names a batch size to try.
    ``accumulate`` is fit's, when ``loader`` is the training loader."""
    try:
        yield
    except RuntimeError as exc:  # torch.OutOfMemoryError is one; MPS raises a plain RuntimeError
        if not isinstance(exc, torch.OutOfMemoryError) and "out of memory" not in str(exc):
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # give back what the failed batch held
        batch_size = getattr(loader, "batch_size", None)
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        if batch_size and batch_size > 1:
            fix = f"Fix: make the batches smaller, e.g. DataLoader(..., batch_size={batch_size // 2})"
            fix += "." if accumulate is None else (
                f"; to keep the effective batch of {batch_size * accumulate}, also pass "
                f"accumulate={2 * accumulate} to fit.")
        else:
            fix = ("Fix: batches of one already; use smaller images, a smaller model, or freeze "
                   "more of the backbone (frozen layers store nothing for the backward pass).")
        raise torch.OutOfMemoryError(f"The device ran out of memory with batches of "
                                     f"{batch_size} ({first_line}). {fix}") from None


# --- stopping cleanly on an interrupt ---------------------------------------------------------


@contextmanager
def _stop_on_interrupt(enabled: bool = True):
    """The first Ctrl-C / Jupyter stop asks the loop to stop after the current batch;
    a second one interrupts at once. Under torchrun (``enabled=False``) an interrupt stops
    every process at once, as torchrun does, since one process stopping alone would leave the
    others waiting for it; resume from the last checkpoint."""
    requested = threading.Event()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield requested.is_set  # signals only reach the main thread
        return

    def handler(signum, frame):
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()
        print("\nlabkit: stopping after this batch (interrupt again to stop at once)", flush=True)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield requested.is_set
    finally:
        signal.signal(signal.SIGINT, previous)


# --- fit ----------------------------------------------------------------------------------------


def _emitter(callbacks: dict[str, list[Callable]] | None):
    callbacks = callbacks or {}
    unknown = set(callbacks) - set(EVENTS)
    if unknown:
        raise ValueError(f"Unknown callback events {sorted(unknown)}. Fix: use {', '.join(EVENTS)}.")

    def emit(event: str, **state) -> bool:
        """Call the event's callbacks with a read-only state; True if one asks to stop."""
        if not callbacks.get(event):
            return False
        view = MappingProxyType(state)
        return any(bool(fn(view)) for fn in callbacks[event])
    return emit


def _snapshot(model: nn.Module) -> dict:
    return {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}


def _check_fit_args(num_epochs, accumulate, scheduler_step, patience):
    if not isinstance(num_epochs, int) or num_epochs < 1:
        raise ValueError(f"num_epochs={num_epochs!r}. Fix: pass a whole number of epochs, 1 or more.")
    if not isinstance(accumulate, int) or accumulate < 1:
        raise ValueError(f"accumulate={accumulate!r}. Fix: pass 1 (no accumulation) or more batches.")
    if scheduler_step not in ("epoch", "batch"):
        raise ValueError(f"scheduler_step={scheduler_step!r}. Fix: pass 'epoch' or 'batch'.")
    if patience is not None and (not isinstance(patience, int) or patience < 1):
        raise ValueError(f"patience={patience!r}. Fix: pass a whole number of epochs, or None.")


def _check_something_trains(model: nn.Module) -> None:
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(
            f"The model has nothing to train: all {sum(1 for _ in model.parameters())} parameter "
            "tensors are frozen (requires_grad=False). Fix: unfreeze what should learn, e.g. "
            "replace_head(model, num_classes=...) for a new trainable head, or "
            "unfreeze(model, 'layer4') (from labkit.transfer).")


def _check_has_batches(train_loader) -> None:
    if len(train_loader) > 0:
        return
    dataset = getattr(train_loader, "dataset", None)
    size = len(dataset) if hasattr(dataset, "__len__") else "?"
    fix = "check the dataset is not empty (the folder, the split)"
    if getattr(train_loader, "drop_last", False):
        fix += ", or pass drop_last=False so that a last, smaller batch counts"
    raise ValueError(f"The training loader has no batches ({size} samples, batch_size="
                     f"{getattr(train_loader, 'batch_size', None)}). Fix: {fix}.")


def fit(model: nn.Module, train_loader, val_loader=None, *, device, num_epochs: int,
        lr: float = 1e-3, optimizer=None, loss_fn=None, scheduler=None, scheduler_step: str = "epoch",
        amp: bool = True, accumulate: int = 1, max_grad_norm: float | None = None,
        monitor: str | None = None, patience: int | None = None, restore_best: bool = True,
        checkpoint=None, resume=None, callbacks: dict[str, list[Callable]] | None = None,
        progress: bool = True, plot: bool = True) -> History:
    """Train ``model`` for ``num_epochs`` and return its History.

    ``monitor`` ("val_loss" by default, "train_loss" without a val_loader) picks the best
    epoch, whose weights are restored at the end; ``patience`` stops after that many epochs
    without improvement. ``checkpoint`` is a file written after every epoch, and
    ``resume`` a file to continue from. ``callbacks`` maps events in EVENTS to functions
    that receive a read-only state and may return True to stop.

    Under ``torchrun`` (after ``labkit.distributed.setup()``) the same call trains on every
    process: the model in DistributedDataParallel, each process on its share of the batches
    (reshuffled every epoch), metrics added up over processes, and progress, printing and
    checkpoints on rank 0 only; see ``labkit.distributed``.
    """
    device = torch.device(device)
    _check_fit_args(num_epochs, accumulate, scheduler_step, patience)
    _check_something_trains(model)
    _check_has_batches(train_loader)
    main = distributed.is_main_process()
    if checkpoint is not None and main:
        check_writable(checkpoint)  # before an epoch is spent on a run that could not save
    emit = _emitter(callbacks)
    model.to(device)
    if optimizer is None:
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    loss_fn = loss_fn or nn.CrossEntropyLoss()
    amp_dtype, scaler = mixed_precision(device, amp)
    history = History(monitor=monitor or ("val_loss" if val_loader is not None else "train_loss"))
    best_state, bad_epochs, start_epoch = None, 0, 1
    net = model  # what trains: the model itself, or the model in DDP under torchrun
    if distributed.is_distributed():
        train_loader = distributed.distributed_loader(train_loader, train=True)
        if val_loader is not None:
            val_loader = distributed.distributed_loader(val_loader, train=False)
        progress, plot = progress and main, plot and main
    if resume is not None:  # every process reads the same file
        saved = load_checkpoint(resume, model=model, optimizer=optimizer, scheduler=scheduler,
                                scaler=scaler, loader=train_loader)
        history.rows, start_epoch, bad_epochs = list(saved["history"]), saved["epoch"] + 1, saved["bad_epochs"]
        if saved["best"] is not None:
            history.best_epoch, history.best_value = saved["best"]["epoch"], saved["best"]["value"]
            best_state = saved["best"]["state"]
        if main:
            print(f"labkit: resumed from {resume} after epoch {saved['epoch']}")
    if distributed.is_distributed():
        net = distributed.wrap_model(model, device)  # shares model's parameters
    live_plot = LivePlot() if plot else None
    bar = tqdm(total=num_epochs * len(train_loader), initial=(start_epoch - 1) * len(train_loader),
               disable=not progress, desc="training", unit="batch")
    started = time.perf_counter()

    def on_batch_end(step, num_batches, loss):
        return emit("batch_end", epoch=epoch, batch=step + 1, num_batches=num_batches, loss=loss)

    try:
        with _stop_on_interrupt(enabled=not distributed.is_distributed()) as interrupted:
            stop = emit("fit_start", num_epochs=num_epochs, start_epoch=start_epoch)
            for epoch in range(start_epoch, num_epochs + 1):
                if stop:
                    break
                epoch_start, lr_used = time.perf_counter(), optimizer.param_groups[0]["lr"]
                if hasattr(getattr(train_loader, "sampler", None), "set_epoch"):
                    train_loader.sampler.set_epoch(epoch)  # a new shuffle on every process
                with _name_a_smaller_batch(train_loader, accumulate):
                    train_metrics = train_one_epoch(
                        net, train_loader, optimizer, loss_fn, device, epoch=epoch,
                        amp_dtype=amp_dtype, scaler=scaler, accumulate=accumulate,
                        max_grad_norm=max_grad_norm,
                        batch_scheduler=scheduler if scheduler_step == "batch" else None,
                        bar=bar, stop=interrupted, on_batch_end=on_batch_end)
                if interrupted() or train_metrics["batches"] < len(train_loader):
                    stop = True  # a partial epoch is not recorded; the last checkpoint stays whole
                    break
                with _name_a_smaller_batch(val_loader):
                    val_metrics = evaluate(net, val_loader, device, loss_fn=loss_fn, amp=amp) \
                        if val_loader is not None else {}
                row = {"epoch": epoch, "train_loss": train_metrics["loss"],
                       "train_accuracy": train_metrics["accuracy"],
                       "val_loss": val_metrics.get("loss"), "val_accuracy": val_metrics.get("accuracy"),
                       "lr": lr_used, "seconds": time.perf_counter() - epoch_start}
                history.rows.append(row)
                value = row.get(history.monitor)
                if value is None:
                    raise ValueError(f"monitor={history.monitor!r} is not recorded. "
                                     f"Fix: use one of {[k for k, v in row.items() if v is not None]}.")
                if history.is_better(value):
                    history.best_epoch, history.best_value = epoch, value
                    best_state, bad_epochs = _snapshot(model), 0
                else:
                    bad_epochs += 1
                if scheduler is not None and scheduler_step == "epoch":
                    _step_scheduler(scheduler, value)
                if checkpoint is not None:
                    best = None if best_state is None else {
                        "epoch": history.best_epoch, "value": history.best_value, "state": best_state}
                    if main:
                        save_checkpoint(checkpoint, model=model, optimizer=optimizer,
                                        scheduler=scheduler, scaler=scaler, epoch=epoch,
                                        history_rows=history.rows, best=best,
                                        bad_epochs=bad_epochs, loader=train_loader)
                    distributed.barrier()  # no process goes on before the file is whole
                if live_plot is not None:
                    live_plot.update(history)
                stop = emit("epoch_end", epoch=epoch, history=tuple(map(MappingProxyType, history.rows)))
                if patience is not None and bad_epochs >= patience:
                    history.stopped_early = True
                    break
            history.interrupted = interrupted()
    except (NonFiniteLoss, torch.OutOfMemoryError) as exc:
        restored = _restore_best(model, best_state, history, restore_best)
        raise type(exc)(f"{exc} {restored}") from None
    finally:
        bar.close()
    message = _restore_best(model, best_state, history, restore_best)
    emit("fit_end", history=tuple(map(MappingProxyType, history.rows)))
    if main:
        print(_summary(history, time.perf_counter() - started, message))
    return history


def _restore_best(model, best_state, history, restore_best) -> str:
    if not restore_best or best_state is None:
        return "The model keeps its last weights."
    model.load_state_dict(best_state)
    return (f"Restored the best weights: epoch {history.best_epoch}, "
            f"{history.monitor} {history.best_value:.4g}.")


def _summary(history: History, seconds: float, message: str) -> str:
    if history.interrupted:
        why = "Stopped by interrupt; the unfinished epoch was dropped"
    elif history.stopped_early:
        why = f"Stopped early: {history.monitor} did not improve for the last epochs"
    else:
        why = "Done"
    return f"labkit: {why}. {len(history)} epoch(s) recorded in {seconds:.1f} s. {message}"
