"""Benchmark of labkit's engine (a measurement, not a test): prints name=value lines.

    python benchmarks/engine.py            # about a minute on a 2-core CPU
    python benchmarks/engine.py --quick    # seconds: checks that the script runs

1. fit against a plain hand-written loop doing the same work on the same data:
   fit_overhead_ratio = fit time / plain time (target: at most 1.03).
2. Ten epochs of head training on features extracted once and cached, against running
   the frozen backbone on every batch of every epoch:
   feature_cache_speedup = uncached time / cached time (extraction included, validation
   left out of both; target 8x),
   with both heads' validation accuracy, and a second cached run that finds the file.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from labkit.device import describe_device, get_device, seed_everything
from labkit.features import FeatureLoader, extract_features
from labkit.train import evaluate, fit
from labkit.transfer import freeze_backbone, replace_head

QUIET = {"progress": False, "plot": False}


def small_cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 8 * 8, 10))


def image_data(n: int, size: int, num_classes: int, seed: int):
    """Noise images whose class shifts one colour channel: learnable, made in memory."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, num_classes, (n,), generator=g)
    images = torch.randn(n, 3, size, size, generator=g)
    images[:, 0] += (labels.float() / max(num_classes - 1, 1) - 0.5)[:, None, None] * 2
    return images, labels


def plain_loop(model, train_loader, device, num_epochs, lr):
    """The loop a lesson writes by hand: the reference fit is compared with."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(num_epochs):
        model.train()
        loss_sum = torch.zeros((), device=device)
        for inputs, targets in train_loader:
            inputs, targets = inputs.to(device), targets.to(device)
            logits = model(inputs)
            loss = loss_fn(logits, targets)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += loss.detach() * targets.shape[0]
        loss_sum.item()


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def bench_fit_overhead(device, quick: bool) -> dict:
    images, labels = image_data(256 if quick else 2048, 32, 10, seed=0)
    loader = DataLoader(TensorDataset(images, labels), batch_size=64, shuffle=False)
    num_epochs, repeats = (1, 1) if quick else (3, 5)
    plain, fitted = [], []
    for _ in range(repeats):  # alternate, so drift in machine speed hits both alike
        seed_everything(0)
        plain.append(timed(lambda: plain_loop(small_cnn().to(device), loader, device, num_epochs, 1e-3)))
        seed_everything(0)
        fitted.append(timed(lambda: fit(small_cnn(), loader, device=device, num_epochs=num_epochs,
                                        lr=1e-3, restore_best=False, **QUIET)))
    return {"plain_loop_seconds": statistics.median(plain), "fit_seconds": statistics.median(fitted),
            "fit_overhead_ratio": statistics.median(fitted) / statistics.median(plain)}


def bench_feature_cache(device, quick: bool) -> dict:
    n, size = (64, 64) if quick else (512, 128)  # the labs use 224-pixel photos
    num_epochs = 2 if quick else 10
    images, labels = image_data(n + n // 4, size, 2, seed=1)
    train = TensorDataset(images[:n], labels[:n])
    val = TensorDataset(images[n:], labels[n:])
    train_loader = DataLoader(train, batch_size=32, shuffle=True)
    val_loader = DataLoader(val, batch_size=64)
    results = {}

    # Uncached: the frozen backbone runs on every batch of every epoch.
    seed_everything(0)
    model = freeze_backbone(replace_head(torchvision.models.resnet18(weights=None), 2))
    results["uncached_seconds"] = timed(lambda: fit(model, train_loader, device=device,
                                                    num_epochs=num_epochs, lr=1e-3, **QUIET))
    results["uncached_val_accuracy"] = evaluate(model, val_loader, device)["accuracy"]

    # Cached: same backbone weights, features extracted once, then a head trained on them.
    backbone = model
    backbone.fc = nn.Identity()
    with tempfile.TemporaryDirectory() as cache_dir:
        def cached_run():  # timed like the uncached run: training only, validation apart
            feats, labs = extract_features(backbone, DataLoader(train, batch_size=64), device,
                                           cache_dir=cache_dir)
            seed_everything(0)
            head = nn.Linear(feats.shape[1], 2)
            fit(head, FeatureLoader(feats.to(device), labs.to(device), batch_size=32, shuffle=True),
                device=device, num_epochs=num_epochs, lr=1e-3, **QUIET)
            return head

        results["cached_seconds"] = timed(cached_run)
        results["cached_again_seconds"] = timed(cached_run)  # finds the file, skips extraction
        head = cached_run()
        val_feats, val_labs = extract_features(backbone, val_loader, device, cache_dir=cache_dir)
        results["cached_val_accuracy"] = evaluate(
            head, FeatureLoader(val_feats, val_labs, batch_size=64), device)["accuracy"]
    results["feature_cache_speedup"] = results["uncached_seconds"] / results["cached_seconds"]
    results["num_epochs"] = num_epochs
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check the script runs")
    args = parser.parse_args()
    device = get_device(verbose=False)
    print(f"machine={platform.machine()} {describe_device(device)}, torch {torch.__version__}")
    for name, value in {**bench_fit_overhead(device, args.quick),
                        **bench_feature_cache(device, args.quick)}.items():
        print(f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}")


if __name__ == "__main__":
    main()
