"""Lesson 01's experiment: a shapes task learnt from a few labels from scratch, on a frozen
pre-trained SmallCNN, or fine-tuning it; only the starting weights and what trains differ."""

import statistics
import time
from collections import namedtuple

import torch
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, TensorDataset

from labkit.device import seed_everything
from labkit.synthetic import SOURCE_CLASSES, TARGET_CLASSES, make_shapes
from labkit.train import evaluate, fit
from labkit.transfer import freeze_backbone, train_mode

METHODS = ("scratch", "frozen", "finetune")
# Fixed, never tuned on the target test images (that would flatter the tuned method): a new
# network needs larger steps than pre-trained weights, a lone linear head the largest.
LEARNING_RATES = {"scratch": 3e-3, "frozen": 1e-2, "finetune": 1e-3}


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    # conv -> BatchNorm -> ReLU, then halve the map: (B, in, H, W) -> (B, out, H/2, W/2)
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True), nn.MaxPool2d(2))


class SmallCNN(nn.Module):
    """Four conv blocks (the backbone, ``features``) and a linear head (``fc``): a 32x32 image
    becomes ``4 * width`` features, then ``num_classes`` logits. Lesson 01."""

    head_names = ("fc",)  # where labkit.transfer finds the head of this model

    def __init__(self, num_classes: int, *, width: int = 32):
        super().__init__()
        self.features = nn.Sequential(
            _block(3, width), _block(width, 2 * width), _block(2 * width, 4 * width),
            _block(4 * width, 4 * width), nn.AdaptiveAvgPool2d(1), nn.Flatten())  # (B, 4 * width)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:         # (B, 3, H, W)
        return self.fc(self.features(images))                        # (B, num_classes)


def pretrain_source(*, n_per_class: int, num_epochs: int, device, seed: int = 0):
    """(SmallCNN pre-trained on the source shapes with ``fit``, its history). Lesson 01."""
    seed_everything(seed)
    train_set = TensorDataset(*make_shapes(SOURCE_CLASSES, n_per_class, seed=seed))
    val_set = TensorDataset(*make_shapes(SOURCE_CLASSES, 100, seed=seed + 10_000))
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    model = SmallCNN(len(SOURCE_CLASSES))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    # One-cycle (warm up to lr, then anneal): a short run converges far more reliably.
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=1e-2, total_steps=num_epochs * len(train_loader))
    history = fit(model, train_loader, DataLoader(val_set, batch_size=256), device=device,
                  num_epochs=num_epochs, optimizer=optimizer, scheduler=scheduler)
    return model, history


# One trained target model and its test accuracy. Lesson 01.
Run = namedtuple("Run", ["method", "labels_per_class", "seed", "accuracy", "seconds"])


def target_test_set(n_per_class: int = 100, *, size: int = 32) -> TensorDataset:
    """Held-out target images, drawn with a seed no training set uses. Lesson 01."""
    return TensorDataset(*make_shapes(TARGET_CLASSES, n_per_class, size=size, seed=99_999))


def train_one_epoch(model, train_loader, optimizer, loss_fn, device) -> None:
    """Lesson 01's loop, once over ``train_loader``."""
    train_mode(model)  # model.train(), but frozen BatchNorm layers keep their statistics
    for images, labels in train_loader:
        images, labels = images.to(device), labels.to(device)
        loss = loss_fn(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def learn_target(method: str, backbone_state: dict, *, labels_per_class: int, seed: int,
                 test_set: TensorDataset, device, steps: int = 60, batch_size: int = 32) -> Run:
    """A target model trained ``steps`` batches from random weights (``scratch``), as a new head
    on the frozen pre-trained backbone (``frozen``) or whole (``finetune``), tested. Lesson 01."""
    if method not in METHODS:
        raise ValueError(f"method={method!r}. Fix: use one of {METHODS}.")
    seed_everything(seed)
    train_set = TensorDataset(*make_shapes(TARGET_CLASSES, labels_per_class, seed=1_000 + seed,
                                           size=test_set.tensors[0].shape[-1]))
    sampler = RandomSampler(train_set, replacement=True, num_samples=steps * batch_size)
    model = SmallCNN(len(SOURCE_CLASSES))
    if method != "scratch":
        model.load_state_dict(backbone_state)
    model.fc = nn.Linear(model.fc.in_features, len(TARGET_CLASSES))  # new head, new classes
    if method == "frozen":
        freeze_backbone(model)
    model.to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=LEARNING_RATES[method])
    started = time.perf_counter()
    train_one_epoch(model, DataLoader(train_set, batch_size=batch_size, sampler=sampler),
                    optimizer, nn.CrossEntropyLoss(), torch.device(device))
    seconds = time.perf_counter() - started
    accuracy = evaluate(model, DataLoader(test_set, batch_size=256), device)["accuracy"]
    return Run(method, labels_per_class, seed, accuracy, seconds)


def compare_methods(backbone_state: dict, *, labels_per_class=(5, 10, 25, 50), seeds=(0, 1, 2),
                    device, steps: int = 60, progress: bool = True) -> list[Run]:
    """Every method at every label count, once per seed; a line per finished cell. Lesson 01."""
    test_set, runs = target_test_set(), []
    for count in labels_per_class:
        for method in METHODS:
            done = [learn_target(method, backbone_state, labels_per_class=count, seed=seed,
                                 test_set=test_set, device=device, steps=steps) for seed in seeds]
            runs += done
            if progress:
                print(f"{count:>3} labels per class, {method:<8}: accuracy "
                      + ", ".join(f"{run.accuracy:.2f}" for run in done))
    return runs


def summarise(runs: list[Run]) -> dict[tuple[str, int], tuple[float, float, int]]:
    """(method, labels per class) -> (mean accuracy, standard deviation, runs). Lesson 01."""
    groups: dict[tuple[str, int], list[float]] = {}
    for run in runs:
        groups.setdefault((run.method, run.labels_per_class), []).append(run.accuracy)
    return {key: (statistics.mean(values), statistics.pstdev(values), len(values))
            for key, values in groups.items()}
