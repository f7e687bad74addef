"""Grad-CAM: which parts of an image pushed a CNN towards a class.

Selvaraju et al. (*Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
Localization*, ICCV 2017) weight the feature maps of one convolutional layer by how much
the class score depends on each of them::

    A = activations of the target layer                  (N, C, h, w)
    weights = mean over h and w of d score / d A          (N, C)     one number per channel
    heatmap = relu(sum over C of weights * A)             (N, h, w)  then upsampled to (H, W)

The last convolutional stage (``layer4`` of a ResNet) is the usual target: its maps still
know *where* things are, and they are close enough to the head to know *what* they are.
The ReLU keeps only the evidence *for* the class.

How this module gets the two tensors: a forward hook (``register_forward_hook``, removed
again before the function returns, even after an error) keeps the layer's output, and
``torch.autograd.grad`` takes the gradient of the class score with respect to exactly that
output. No backward hook is involved (the deprecated ``register_backward_hook`` in
particular), and no parameter's ``.grad`` is written, so a training run is not disturbed.
The input gets ``requires_grad`` so that gradients flow even through a fully frozen model::

    from labkit.gradcam import grad_cam, plot_gradcam
    heatmaps = grad_cam(model, model.layer4, images)            # (N, H, W) in [0, 1]
    plot_gradcam(pictures, heatmaps, titles=[...])              # pictures: (N, 3, H, W) in [0, 1]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["grad_cam", "plot_gradcam"]


def _layer(model: nn.Module, target_layer: nn.Module | str) -> nn.Module:
    if isinstance(target_layer, str):
        modules = dict(model.named_modules())
        if target_layer not in modules:
            convs = [name for name, m in modules.items() if isinstance(m, nn.Conv2d)][-3:]
            raise KeyError(
                f"{type(model).__name__} has no layer {target_layer!r}. Fix: pass a name from "
                f"[name for name, _ in model.named_modules()], such as a late stage or one of "
                f"its last convolutions ({', '.join(convs)}), or the module itself.")
        return modules[target_layer]
    if not any(module is target_layer for module in model.modules()):
        raise ValueError(
            f"The target layer ({type(target_layer).__name__}) is not part of this "
            f"{type(model).__name__}. Fix: pass a module of the same model, e.g. model.layer4.")
    return target_layer


def _class_indices(targets, logits: Tensor) -> Tensor:
    """(N,) class per image: the predicted one, or the ones asked for."""
    if targets is None:
        return logits.argmax(dim=1)
    classes = torch.as_tensor(targets, device=logits.device).long().reshape(-1)
    if classes.numel() == 1:
        classes = classes.expand(logits.shape[0])
    if classes.numel() != logits.shape[0] or not (0 <= classes).all() \
            or not (classes < logits.shape[1]).all():
        raise ValueError(
            f"targets must be one class index, or one per image ({logits.shape[0]}), each "
            f"from 0 to {logits.shape[1] - 1}; got {targets!r}. Fix: pass e.g. targets=labels.")
    return classes


def grad_cam(model: nn.Module, target_layer: nn.Module | str, inputs: Tensor, *,
             targets=None) -> Tensor:
    """Grad-CAM heatmaps, (N, H, W) on the CPU, each scaled to [0, 1] (all zeros where no
    position speaks for the class).

    ``target_layer`` is a module of ``model`` (``model.layer4``) or its name. ``targets``
    picks the class to explain: None for each image's predicted class, one index for all, or
    one per image. ``inputs`` (N, 3, H, W) must be on the model's device. The model runs in
    eval mode (its mode is restored afterwards), so BatchNorm and dropout behave as at test
    time and no running statistic changes.
    """
    layer = _layer(model, target_layer)
    captured: list[Tensor] = []

    def keep(module, args, output):
        captured.append(output)

    was_training = model.training
    handle = layer.register_forward_hook(keep)
    try:
        model.eval()
        with torch.enable_grad():
            # A leaf that requires grad: gradients then reach the layer even when every
            # parameter of the model is frozen.
            x = inputs.detach().clone().requires_grad_(True)
            logits = model(x)
            logits = getattr(logits, "logits", logits)  # (N, num_classes)
            if not captured:
                raise RuntimeError(
                    f"The target layer ({type(layer).__name__}) was not used in the forward "
                    f"pass. Fix: pick a layer the input goes through, e.g. model.layer4.")
            activations = captured[-1]  # (N, C, h, w); the last call if the layer runs twice
            if activations.ndim != 4:
                raise ValueError(
                    f"The target layer outputs a tensor of shape {tuple(activations.shape)}; "
                    f"Grad-CAM needs feature maps (N, C, h, w). Fix: pick a convolutional "
                    f"layer or stage, e.g. model.layer4, not the pooling or the head.")
            classes = _class_indices(targets, logits)
            scores = logits.gather(1, classes[:, None]).sum()  # images do not interact: one sum
            (gradients,) = torch.autograd.grad(scores, activations)  # (N, C, h, w)
    finally:
        handle.remove()
        model.train(was_training)
    weights = gradients.mean(dim=(2, 3), keepdim=True)               # (N, C, 1, 1)
    cam = torch.relu((weights * activations).sum(dim=1, keepdim=True)).detach()  # (N, 1, h, w)
    cam = nn.functional.interpolate(cam.float(), size=inputs.shape[-2:], mode="bilinear",
                                    align_corners=False)[:, 0]       # (N, H, W)
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]
    return (cam / peak).clamp(0, 1).cpu()


def plot_gradcam(images, heatmaps: Tensor, *, titles: Sequence[str] | None = None,
                 alpha: float = 0.45, columns: int = 4, fig=None):
    """Each image with its heatmap laid over it (red: strong evidence for the class).

    ``images``: (N, 3, H, W) tensor with values in [0, 1] (undo the normalisation first), or
    a list of PIL images of the heatmaps' size; ``heatmaps``: (N, H, W) from ``grad_cam``.
    """
    import matplotlib.pyplot as plt

    if isinstance(images, Tensor):
        pictures = [image.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy() for image in images]
    else:
        pictures = list(images)
    heatmaps = heatmaps.detach().cpu().float().numpy()  # matplotlib takes NumPy arrays
    if len(pictures) != len(heatmaps):
        raise ValueError(f"{len(pictures)} images but {len(heatmaps)} heatmaps. Fix: pass one "
                         f"heatmap per image, in the same order.")
    columns = max(1, min(columns, len(pictures)))
    rows = -(-len(pictures) // columns)
    fig = fig or plt.figure(figsize=(2.6 * columns, 2.8 * rows))
    fig.clear()
    axes = fig.subplots(rows, columns, squeeze=False)
    for index, ax in enumerate(axes.flat):
        ax.axis("off")
        if index >= len(pictures):
            continue
        ax.imshow(pictures[index])
        ax.imshow(heatmaps[index], cmap="jet", alpha=alpha, vmin=0, vmax=1)
        if titles is not None:
            ax.set_title(titles[index], fontsize=9)
    fig.tight_layout()
    return fig
