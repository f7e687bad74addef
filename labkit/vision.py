"""Looking inside pre-trained image models: predictions, metadata, activations, latency.

The CNN lessons (VGG, ResNet, Inception) use these to classify real photos with the
weights' own preprocessing, to read what the weights' metadata says about a model, to
capture feature maps with forward hooks and to time a model on the learner's machine::

    model, weights = load_vision_model("vgg16")
    classify(model, weights, [sample_photo("cat")], device=device)  # [[("tabby", 0.41), ...]]
    weights_summary(weights)["params"]                              # 138357544
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["count_parameters", "weights_summary", "classify", "activations",
           "measure_latency"]


def count_parameters(module: nn.Module, *, trainable: bool = False) -> int:
    """Number of parameter values in ``module`` (only those that require grad if
    ``trainable``). Shared parameters count once, as in ``weights.meta["num_params"]``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


def weights_summary(weights) -> dict:
    """What a torchvision weights enum member says about its model, as plain numbers.

    ``params`` (count), ``gflops`` (per image at the weights' input size; torchvision
    counts one multiply-add as one operation), ``acc1``/``acc5`` (ImageNet-1K validation
    accuracy in percent, single crop), ``file_mb`` (download size), ``crop`` (input size
    the weights' transforms produce) and ``min_size``.
    """
    meta = weights.meta
    metrics = meta["_metrics"]["ImageNet-1K"]
    crop = weights.transforms().crop_size
    return {
        "weights": f"{type(weights).__name__}.{weights.name}",
        "params": meta["num_params"],
        "gflops": meta["_ops"],
        "acc1": metrics["acc@1"],
        "acc5": metrics["acc@5"],
        "file_mb": meta["_file_size"],
        "crop": crop[0] if isinstance(crop, (list, tuple)) else crop,
        "min_size": meta["min_size"],
    }


@torch.no_grad()
def classify(model: nn.Module, weights, images: Sequence, *, device: torch.device | str,
             k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-``k`` ImageNet classes with probabilities for each PIL image, best first.

    Each image goes through ``weights.transforms()`` (resize, crop, normalise: exactly
    what the model saw in training), then the model in eval mode.
    """
    categories = weights.meta["categories"]
    preprocess = weights.transforms()
    batch = torch.stack([preprocess(image) for image in images]).to(device)  # (N, 3, H, W)
    model.eval()
    logits = model(batch)
    logits = getattr(logits, "logits", logits)  # Inception/GoogLeNet named tuples
    probs = logits.float().softmax(dim=1)
    top = probs.topk(min(k, probs.shape[1]), dim=1)
    return [[(categories[i], p) for p, i in zip(values.tolist(), indices.tolist())]
            for values, indices in zip(top.values, top.indices)]


@torch.no_grad()
def activations(model: nn.Module, layers: Sequence[str], inputs: Tensor) -> dict[str, Tensor]:
    """The outputs of the named submodules for ``inputs``, captured with forward hooks.

    ``layers`` are names from ``model.named_modules()`` (for example ``"features.3"`` or
    ``"layer2"``). The hooks are removed afterwards, even if the forward pass fails.
    """
    modules = dict(model.named_modules())
    missing = [name for name in layers if name not in modules]
    if missing:
        some = ", ".join(list(modules)[1:8])
        raise KeyError(f"{type(model).__name__} has no layer(s) {missing}. Fix: use names from "
                       f"[name for name, _ in model.named_modules()], such as {some}.")
    captured: dict[str, Tensor] = {}

    def keep(name):
        def hook(module, args, output):
            # clone: on a CPU .cpu() returns the same tensor, which a following in-place
            # layer (ReLU(inplace=True)) would overwrite
            captured[name] = output.detach().cpu().clone()
        return hook

    handles = [modules[name].register_forward_hook(keep(name)) for name in layers]
    try:
        model.eval()
        model(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return {name: captured[name] for name in layers}


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@torch.no_grad()
def measure_latency(model: nn.Module, inputs: Tensor, *, device: torch.device | str,
                    repeats: int = 10, warmup: int = 2) -> float:
    """Median seconds for one forward pass of ``inputs`` (a whole batch) in eval mode.

    The first ``warmup`` calls are not timed: they pay one-off costs (memory allocation,
    kernel selection). The median ignores the odd slow call caused by other programs.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    device = torch.device(device)
    model.eval().to(device)
    inputs = inputs.to(device)
    for _ in range(warmup):
        model(inputs)
    _synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(inputs)
        _synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)
