"""Looking inside pre-trained image models (lessons 00 to 04): predictions with the weights' own
preprocessing, what the weights' metadata says, activations through forward hooks, latency."""

import statistics
import time

import torch
from torch import Tensor, nn


def count_parameters(module: nn.Module, *, trainable: bool = False) -> int:
    """Parameter values (if ``trainable``, those that train); shared ones once. Lesson 01."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable)


def weights_summary(weights) -> dict:
    """A torchvision weights enum's metadata as numbers: ``gflops`` per image (a multiply-add
    counts once), ``acc1``/``acc5`` ImageNet-1K accuracy in percent, ``file_mb``. Lesson 02."""
    meta, crop = weights.meta, weights.transforms().crop_size
    metrics = meta["_metrics"]["ImageNet-1K"]
    return {"weights": f"{type(weights).__name__}.{weights.name}", "params": meta["num_params"],
            "gflops": meta["_ops"], "acc1": metrics["acc@1"], "acc5": metrics["acc@5"],
            "file_mb": meta["_file_size"], "crop": crop[0] if isinstance(crop, list) else crop,
            "min_size": meta["min_size"]}


@torch.no_grad()
def classify(model: nn.Module, weights, images: list, *, device: torch.device | str,
             k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-``k`` (ImageNet class, probability) per PIL image, through ``weights.transforms()``
    (the resize, crop and normalisation the model was trained with), in eval mode. Lesson 00."""
    batch = torch.stack(list(map(weights.transforms(), images))).to(device)  # (N, 3, H, W)
    logits = model.eval()(batch)                                     # (N, classes)
    top = logits.float().softmax(dim=1).topk(min(k, logits.shape[1]), dim=1)   # (N, k) each
    return [[(weights.meta["categories"][i], p) for p, i in zip(values, indices)]
            for values, indices in zip(top.values.tolist(), top.indices.tolist())]


@torch.no_grad()
def activations(model: nn.Module, layers: list[str], inputs: Tensor) -> dict[str, Tensor]:
    """Name -> output of each named layer for ``inputs``, via forward hooks. Lesson 01."""
    captured, names = {}, {model.get_submodule(name): name for name in layers}  # module -> name

    def keep(module, args, output):
        # clone: on a CPU .cpu() is the same tensor, which an in-place ReLU would overwrite
        captured[names[module]] = output.detach().cpu().clone()

    handles = [module.register_forward_hook(keep) for module in names]
    try:
        model.eval()(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return {name: captured[name] for name in layers}


@torch.no_grad()
def measure_latency(model: nn.Module, inputs: Tensor, *, device: torch.device | str,
                    repeats: int = 10, warmup: int = 2) -> float:
    """Median seconds of a forward pass in eval mode, after ``warmup`` untimed ones. Lesson 02."""
    model.eval().to(device)
    inputs = inputs.to(device)
    # Wait for the GPU's queued work before reading the clock (torch.cpu's is a no-op).
    synchronize = getattr(torch, torch.device(device).type).synchronize
    times = []
    for _ in range(warmup + repeats):
        synchronize()
        start = time.perf_counter()
        model(inputs)
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times[warmup:])  # the warm-up runs fill caches: not counted
