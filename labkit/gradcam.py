"""Grad-CAM (lesson 07; Selvaraju et al., 2017, *Grad-CAM: Visual Explanations from Deep
Networks via Gradient-based Localization*): which parts of an image pushed a CNN towards a class::

    A = activations of the target layer                  (N, C, h, w)
    weights = mean over h and w of d score / d A          (N, C)     one number per channel
    heatmap = relu(sum over C of weights * A)             (N, h, w)  then upsampled to (H, W)"""

import matplotlib.pyplot as plt
import torch
from torch import Tensor, nn


def grad_cam(model: nn.Module, target_layer: nn.Module | str, inputs: Tensor, *,
             targets=None) -> Tensor:
    """Grad-CAM heatmaps (N, H, W) in [0, 1] on the CPU, in eval mode. ``target_layer``: a module
    or its name; ``targets``: None (predicted class), one index, or one per image. Lesson 07."""
    layer = model.get_submodule(target_layer) if isinstance(target_layer, str) else target_layer
    captured, was_training = [], model.training  # A, once the forward pass has run
    handle = layer.register_forward_hook(lambda module, args, output: captured.append(output))
    try:
        model.eval()
        with torch.enable_grad():
            logits = model(inputs.detach().clone().requires_grad_(True))   # (N, classes)
            if not captured:
                raise RuntimeError(f"The target layer ({type(layer).__name__}) was not used in "
                                   "the forward pass. Fix: pick a layer of this model that the "
                                   "input goes through, e.g. model.layer4.")
            activations = captured[-1]                                       # (N, C, h, w)
            if activations.ndim != 4:
                raise ValueError(f"The target layer outputs a {tuple(activations.shape)} "
                                 "tensor; Grad-CAM needs feature maps (N, C, h, w). Fix: pick a "
                                 "convolutional stage, e.g. model.layer4, not the pooling or head.")
            classes = logits.argmax(dim=1) if targets is None else torch.as_tensor(  # (N,)
                targets, device=logits.device).long().expand(len(logits))
            scores = logits.gather(1, classes[:, None]).sum()  # a sum keeps the images apart
            # With respect to A alone: no parameter's .grad is written; the input that requires
            # grad lets the gradient through a frozen model.
            (gradients,) = torch.autograd.grad(scores, activations)          # (N, C, h, w)
    finally:
        handle.remove()
        model.train(was_training)
    weights = gradients.mean(dim=(2, 3), keepdim=True)                       # (N, C, 1, 1)
    cam = torch.relu((weights * activations).sum(dim=1, keepdim=True)).detach()  # (N, 1, h, w)
    cam = nn.functional.interpolate(cam.float(), size=inputs.shape[-2:], mode="bilinear")[:, 0]
    peak = cam.flatten(1).amax(dim=1).clamp_min(1e-12)[:, None, None]       # (N, 1, 1)
    return (cam / peak).clamp(0, 1).cpu()


def plot_gradcam(images, heatmaps: Tensor, *, titles: list[str] | None = None):
    """Each image with its heatmap over it (red: evidence for the class), four a row. Lesson 07."""
    if isinstance(images, Tensor):
        images = [image.detach().cpu().permute(1, 2, 0).clamp(0, 1).numpy() for image in images]
    columns = min(4, len(images))
    rows = -(-len(images) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.8 * rows), squeeze=False)
    for ax, image, heatmap, title in zip(axes.flat, images, heatmaps.detach().float().cpu(),
                                         titles or [None] * len(images)):
        ax.imshow(image)
        ax.imshow(heatmap.numpy(), cmap="jet", alpha=0.45, vmin=0, vmax=1)
        ax.set_title(title or "", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.tight_layout()
    return fig
