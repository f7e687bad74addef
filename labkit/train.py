"""The course's training loop, ``fit``, with ``evaluate`` and ``predict`` for after it.

``fit??`` reads like the loop Lesson 01 (notebooks/01_transfer_learning.ipynb) writes by hand,
plus a named line each for mixed precision (no-ops when off, as in nanoGPT), accumulation,
clipping, the scheduler, early stopping and the checkpoint; its guarantees wrap the loop.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn
from tqdm.auto import tqdm

from labkit import distributed
from labkit.batches import AcceptsDicts, split_batch
from labkit.checkpoint import TrainingState, check_writable
from labkit.transfer import aux_loss, train_mode
from labkit.viz import LivePlot

__all__ = ["fit", "evaluate", "predict", "History", "Predictions", "NonFiniteLoss"]


def fit(model: nn.Module, train_loader, val_loader=None, *, device, num_epochs: int,
        lr: float = 1e-3, optimizer=None, scheduler=None, scheduler_step: str = "batch",
        amp: bool = True, accumulate: int = 1, max_grad_norm: float | None = None,
        patience: int | None = None, restore_best: bool = False, checkpoint=None, resume=None,
        progress: bool = False, plot: bool = False) -> History:
    """Train ``model`` for ``num_epochs`` and return its History. Lesson 03 onwards.

    ``restore_best`` and ``patience`` use the best epoch: the lowest val_loss (or train_loss)."""
    device = torch.device(device)
    check_before_training(model, train_loader, checkpoint, scheduler_step)
    model.to(device)
    optimizer = optimizer or torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                               lr=lr)
    amp_dtype = autocast_dtype(device) if amp else None  # None: full precision
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    history = History(monitor="val_loss" if val_loader is not None else "train_loss")
    state = TrainingState(model, optimizer, scheduler, scaler, train_loader, history, restore_best)
    start_epoch = state.resume(resume) if resume is not None else 1
    loss_fn = ClassifierLoss(train_loader)
    model, train_loader, val_loader = distributed.prepare(model, train_loader, val_loader, device)
    model = AcceptsDicts(model)  # model(images) also for a tokenizer's dict (lesson 09)
    live_plot = LivePlot()
    with guard(state, train_loader, accumulate) as stop_requested, progress_bar(
            train_loader, num_epochs, start_epoch, progress) as bar:
        for epoch in range(start_epoch, num_epochs + 1):
            train_mode(model)  # model.train(), but frozen BatchNorm layers keep their statistics
            distributed.set_epoch(train_loader, epoch)
            stats, epoch_lr = EpochStats(), optimizer.param_groups[0]["lr"]
            for step, (images, labels) in enumerate(map(split_batch, train_loader)):
                images, labels = images.to(device), labels.to(device)
                with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                    logits = model(images)                             # (B, num_classes)
                    loss = loss_fn(logits, labels)
                if step % accumulate == 0:  # the first batch of a group of `accumulate`
                    optimizer.zero_grad()
                scaler.scale(loss / accumulate).backward()
                if (step + 1) % accumulate == 0 or step + 1 == len(train_loader):
                    if max_grad_norm is not None:
                        scaler.unscale_(optimizer)  # clip the true gradients, not scaled ones
                        nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
                    scaler.step(optimizer)
                    scaler.update()
                    if scheduler is not None and scheduler_step == "batch":
                        scheduler.step()
                stats.add(images, labels, logits, loss)  # summed on the device: no sync
                bar.update()
                if stop_requested():
                    break
            if stop_requested():  # the unfinished epoch is not recorded
                break
            train = stats.read(epoch, epoch_lr)  # NonFiniteLoss if the loss became NaN
            val = {} if val_loader is None else evaluate(model, val_loader, device, amp=amp)
            history.add(epoch, train, val, lr=epoch_lr, started=stats.started)
            if scheduler is not None and scheduler_step == "epoch":
                scheduler.step()
            state.keep_weights_if_best(epoch)
            if checkpoint is not None:
                state.save(checkpoint, epoch)
            if plot:
                live_plot.update(history)
            if patience is not None and epoch - (history.best_epoch or 0) >= patience:
                history.stopped_early = True
                break
    history.interrupted = stop_requested()
    print_summary(history, state.finish())
    return history


@dataclass(repr=False)
class History:
    """One row per finished epoch (epoch, train_loss, train_accuracy, val_loss, val_accuracy,
    lr, seconds), and the best epoch: the lowest ``monitor``. Lesson 03."""

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

    def add(self, epoch: int, train: dict, val: dict, *, lr: float, started: float) -> None:
        self.rows.append({"epoch": epoch, "train_loss": train["loss"], "train_accuracy":
                          train["accuracy"], "val_loss": val.get("loss"), "val_accuracy":
                          val.get("accuracy"), "lr": lr, "seconds": time.perf_counter() - started})
        value = self.rows[-1][self.monitor]
        if value == value and (self.best_value is None or value < self.best_value):  # not NaN
            self.best_epoch, self.best_value = epoch, value

    def __repr__(self) -> str:  # a table, one line per epoch
        keys = [k for k in (self.rows[0] if self.rows else {}) if self[k] != [None] * len(self)]
        lines = [keys] + [[f"{row[k]:.4g}" if isinstance(row[k], float) else str(row[k])
                           for k in keys] for row in self.rows]
        return "\n".join("  ".join(f"{cell:>14}" for cell in line) for line in lines)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 where the GPU has it, else float16 (with a GradScaler); None off CUDA."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class ClassifierLoss:
    """Cross-entropy for any output the course meets (``.logits``, Inception's auxiliary heads);
    the first call checks the labels and the data's classes against the model's outputs."""

    def __init__(self, train_loader):
        dataset = getattr(train_loader.dataset, "dataset", train_loader.dataset)  # under a Subset
        classes = getattr(dataset, "classes", None)
        self.classes = list(classes) if isinstance(classes, (list, tuple)) else []
        self.checked = False

    def __call__(self, logits, labels) -> torch.Tensor:
        num_outputs, classes = getattr(logits, "logits", logits).shape[-1], self.classes
        if not self.checked and int(labels.max()) >= num_outputs:
            raise ValueError(f"A target is class {int(labels.max())}, but the model has "
                             f"{num_outputs} outputs. Fix: replace_head(model, num_classes="
                             f"{int(labels.max()) + 1}) or check the labels.")
        if not self.checked and len(classes) not in (0, num_outputs):
            shown = ", ".join(map(str, classes[:5])) + (", ..." if len(classes) > 5 else "")
            raise ValueError(f"The data has {len(classes)} classes ({shown}) but the model has "
                             f"{num_outputs} outputs. Fix: replace_head(model, num_classes="
                             f"{len(classes)}), or train on the data the head was made for.")
        self.checked = True
        return aux_loss(logits, labels, nn.functional.cross_entropy)[0]


class NonFiniteLoss(FloatingPointError):
    pass


class EpochStats:
    """Per batch: loss x size, correct predictions, size, and whether the inputs held NaN or
    inf; kept on the device, read once (one sync) after the last batch."""

    def __init__(self):
        self.rows, self.started = [], time.perf_counter()

    def add(self, images, labels, logits, loss) -> None:
        loss, logits = loss.detach().float(), getattr(logits, "logits", logits).detach()
        inputs = images.values() if isinstance(images, dict) else [images]
        bad = sum(((~torch.isfinite(x)).any().float() for x in inputs if x.is_floating_point()),
                  torch.zeros_like(loss))  # > 0: NaN or inf in the inputs
        size = torch.full_like(loss, len(labels))
        correct = (logits.argmax(1) == labels).sum().float()
        self.rows.append(torch.stack([loss * size, correct, size, bad]))

    def read(self, epoch: int, lr: float) -> dict:
        """{"loss", "accuracy"} over all processes, or NonFiniteLoss naming the first bad batch."""
        rows = torch.stack(self.rows)  # (batches, 4)
        loss_sum, correct, seen, _ = distributed.all_reduce(rows.sum(0)).tolist()
        if abs(loss_sum) < float("inf"):
            return {"loss": loss_sum / seen, "accuracy": correct / seen}
        first = torch.tensor([int(m.nonzero()[0]) if m.any() else len(rows)
                              for m in (~torch.isfinite(rows[:, 0]), rows[:, 3] > 0)])
        loss_batch, input_batch = distributed.all_reduce(first.to(rows.device), "min").tolist()
        if input_batch <= loss_batch:  # the data was NaN before the loss: not the learning rate
            raise NonFiniteLoss(
                f"The inputs of epoch {epoch}, batch {input_batch + 1} hold NaN or infinite "
                f"values, so the loss became NaN or infinite. Fix: clean the data (missing "
                f"values, a division by zero in a transform or a normalisation with std 0); "
                f"torch.isfinite(x).all() finds the samples.")
        raise NonFiniteLoss(
            f"The loss became NaN or infinite at epoch {epoch}, batch {loss_batch + 1} "
            f"(lr={lr:.1e}). Fix: lower the learning rate, for example lr={lr / 10:.1e}, or clip "
            f"gradients with max_grad_norm=1.0.")


def progress_bar(train_loader, num_epochs: int, start_epoch: int, progress: bool) -> tqdm:
    batches = len(train_loader)
    return tqdm(total=num_epochs * batches, initial=(start_epoch - 1) * batches, unit="batch",
                desc="training", disable=not (progress and distributed.rank() == 0))


def print_summary(history: History, message: str) -> None:
    why = ("Stopped by interrupt; the unfinished epoch was dropped" if history.interrupted else
           f"Stopped early: {history.monitor} did not improve for the last epochs"
           if history.stopped_early else "Done")
    if distributed.rank() == 0:
        print(f"labkit: {why}. {len(history)} epoch(s) recorded in "
              f"{sum(history['seconds']):.1f} s. {message}")


def check_before_training(model, train_loader, checkpoint, scheduler_step) -> None:
    """Mistakes found before the first epoch is spent, each with its fix."""
    if scheduler_step not in ("batch", "epoch"):
        raise ValueError(f"scheduler_step={scheduler_step!r}. Fix: pass 'batch' or 'epoch'.")
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError(f"The model has nothing to train: all {len(list(model.parameters()))} "
                         "parameter tensors are frozen (requires_grad=False). Fix: unfreeze what "
                         "should learn, e.g. replace_head(model, num_classes=...) for a new head, "
                         "or unfreeze(model, 'layer4') (from labkit.transfer).")
    if len(train_loader) == 0:
        raise ValueError(f"The training loader has no batches ({len(train_loader.dataset)} "
                         f"samples, batch_size={train_loader.batch_size}, drop_last="
                         f"{train_loader.drop_last}). Fix: check the dataset is not empty (the "
                         "folder, the split), or pass drop_last=False for a smaller last batch.")
    if checkpoint is not None and distributed.rank() == 0:
        check_writable(checkpoint)  # before an epoch is spent on a run that could not save


@contextlib.contextmanager
def guard(state: TrainingState, train_loader, accumulate: int):
    """Around fit's loop: a first Ctrl-C (or Jupyter's stop) stops it after the batch, a second
    at once (under torchrun, the first). A NaN loss or a full GPU: the fix and the best weights."""
    requested = threading.Event()

    def handler(signum, frame):
        if requested.is_set():
            raise KeyboardInterrupt
        requested.set()
        print("\nlabkit: stopping after this batch (interrupt again to stop at once)", flush=True)

    catch = threading.current_thread() is threading.main_thread()  # where signals arrive
    catch = catch and not distributed.is_distributed()
    previous = signal.signal(signal.SIGINT, handler) if catch else None
    try:
        with name_a_smaller_batch(train_loader, accumulate):
            yield requested.is_set
    except (NonFiniteLoss, torch.OutOfMemoryError) as error:
        raise type(error)(f"{error} {state.finish(restore=True)}") from None
    finally:
        if catch:
            signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def name_a_smaller_batch(loader, accumulate: int | None = None):
    """Out of GPU (or MPS) memory: an error naming a batch size (and ``accumulate``) to try."""
    try:
        yield
    except RuntimeError as exc:  # torch.OutOfMemoryError; MPS raises a plain RuntimeError
        first_line, size = (str(exc).strip().splitlines() or [""])[0], loader.batch_size
        if first_line.startswith("The device ran out") or not (
                isinstance(exc, torch.OutOfMemoryError) or "out of memory" in first_line):
            raise  # not out of memory, or already explained by predict, inside fit
        torch.cuda.empty_cache()  # give back what the failed batch held (nothing without CUDA)
        fix = ("batches of one already; use smaller images, a smaller model, or freeze more of "
               "the backbone (frozen layers store nothing for the backward pass).") if size < 2 \
            else f"make the batches smaller, e.g. DataLoader(..., batch_size={size // 2})" + (
                "." if accumulate is None else f"; to keep the effective batch of "
                f"{size * accumulate}, also pass accumulate={2 * accumulate} to fit.")
        raise torch.OutOfMemoryError(f"The device ran out of memory with batches of {size} "
                                     f"({first_line}). Fix: {fix}") from None


class Predictions(NamedTuple):
    logits: torch.Tensor   # (N, C)
    preds: torch.Tensor    # (N,)
    targets: torch.Tensor  # (N,)


@torch.no_grad()
def predict(model, loader, device, *, amp: bool = True) -> Predictions:
    """Logits, predicted classes and targets for a whole loader, on the CPU, in eval mode (the
    mode is put back afterwards). Lesson 07."""
    device, was_training, call = torch.device(device), model.training, AcceptsDicts(model)
    dtype, batches = autocast_dtype(device) if amp else None, []
    model.eval()
    try:
        with name_a_smaller_batch(loader):
            for images, labels in map(split_batch, loader):
                with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                    logits = call(images.to(device))
                batches.append((getattr(logits, "logits", logits).float().cpu(), labels.cpu()))
    finally:
        model.train(was_training)
    if not batches:
        raise ValueError("The loader yielded no batches. Fix: check the dataset is not empty.")
    logits, labels = (torch.cat(column) for column in zip(*batches))
    return Predictions(logits, logits.argmax(dim=1), labels)


def evaluate(model, loader, device, *, amp: bool = True) -> dict:
    """Mean cross-entropy loss and accuracy over a loader (over all processes under torchrun),
    without gradients, in eval mode. Lesson 03."""
    logits, preds, labels = predict(model, loader, device, amp=amp)
    loss = nn.functional.cross_entropy(logits, labels).item()
    totals = torch.tensor([loss * len(labels), (preds == labels).sum().item(), len(labels)],
                          dtype=torch.float64, device=device)
    loss_sum, correct, seen = distributed.all_reduce(totals).tolist()
    return {"loss": loss_sum / seen, "accuracy": correct / seen}
