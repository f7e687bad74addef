"""Checker for lesson 05 (feature extraction): the learner's function that turns a torchvision
ResNet classifier into a frozen feature extractor.

The learner hands in the function ``make_feature_extractor(model)``. The checker never sees
the learner's own models: it builds two small ResNets with random weights (one of basic blocks,
whose head reads 512 features, and one of bottlenecks, whose head reads 2048, so a hard-coded
size is caught), keeps a reference copy of each, calls the function, and checks what comes back:

1. a module, with no parameter that would train;
2. BatchNorm and dropout in eval mode, so the features do not depend on the batch and
   extracting them leaves the running statistics alone;
3. for a (2, 3, 64, 64) input, features of shape (2, D), where D is what the ResNet's head
   reads, equal to the reference's globally pooled output: the model's own layers, all of
   them, and nothing after the pooling.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

from labkit.quiz.checkers import CheckResult, register_checker

__all__ = ["check_feature_extractor", "probe_resnets"]

HAND_IN = 'quiz.answer("build_extractor", make_feature_extractor)'
SIZE = 64  # height and width of the probe images: small, and enough for five stride-2 stages


@functools.cache
def _probe_templates() -> dict:
    import torch
    from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():  # the learner's random stream is left alone
        torch.manual_seed(0)
        models = {"ResNet of basic blocks": ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10),
                  "ResNet of bottleneck blocks": ResNet(Bottleneck, [1, 1, 1, 1], num_classes=10)}
    for model in models.values():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                size = module.running_mean.shape
                module.running_mean.copy_(torch.randn(size, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(size, generator=generator) + 0.5)
        model.eval()
    return models


def probe_resnets() -> dict:
    """Name -> a small torchvision ResNet with random weights and BatchNorm statistics that
    are not the defaults (so a layer in the wrong mode changes the output); fresh copies on
    every call, since the learner's function may change the model it is given."""
    return copy.deepcopy(_probe_templates())


def _reference_features(model, images):
    import torch
    from torch import nn

    reference = copy.deepcopy(model)
    reference.fc = nn.Identity()
    with torch.no_grad():
        return reference.eval()(images)  # (B, D): the input of the head


def _in_train_mode(extractor) -> list[str]:
    from torch import nn

    kinds = (nn.modules.batchnorm._BatchNorm, nn.Dropout)
    return [type(m).__name__ for m in extractor.modules() if isinstance(m, kinds) and m.training]


def _shape_problem(shape: tuple, want: tuple, num_classes: int) -> str:
    batch, features = want
    if shape == (batch, num_classes):
        return (f"the extractor returns {shape}: one score per class of the old head, so the "
                f"head is still there. Fix: model.fc = nn.Identity(), so the pooled "
                f"{features} features come out instead.")
    if shape == (batch, features, 1, 1):
        return (f"the extractor returns {shape}: the pooled features, not yet flattened. "
                f"Fix: add nn.Flatten() after the pooling layer (or keep the model's own "
                f"forward, which flattens, and replace model.fc with nn.Identity()).")
    spread = (len(shape) == 4 and shape[:2] == (batch, features)) or (
        len(shape) == 2 and shape[0] == batch and shape[1] > features
        and shape[1] % features == 0)
    if spread:
        return (f"the extractor returns {shape}: the {features} channels at every position "
                f"of the last feature map, because the global average pooling is missing. "
                f"Fix: keep model.avgpool, then flatten; only the head, model.fc, goes.")
    return (f"the extractor returns a tensor of shape {shape}, expected {want}: the "
            f"{features} numbers that the model's head reads, per image. Fix: keep every "
            f"layer up to and including the pooling, flatten, and drop only model.fc.")


def _check_one(make_feature_extractor, name: str, model) -> str | None:
    import torch
    from torch import nn

    images = torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    expected = _reference_features(model, images)  # taken before the learner's code runs
    num_classes, features = model.fc.out_features, model.fc.in_features
    try:
        extractor = make_feature_extractor(model)
    except Exception as error:  # the learner's code failed: report it, do not crash
        return (f"Calling make_feature_extractor on a {name} raised {type(error).__name__}: "
                f"{error}. Fix: take a torchvision ResNet and return the extractor module.")
    if not isinstance(extractor, nn.Module):
        return (f"make_feature_extractor returned a {type(extractor).__name__}, not a module. "
                f"Fix: return the model itself (after changing it) or an nn.Sequential.")
    trainable = sum(p.numel() for p in extractor.parameters() if p.requires_grad)
    if trainable:
        return (f"{trainable:,} parameters of the extractor still require grad, so an "
                f"optimizer could change the backbone. Fix: extractor.requires_grad_(False).")
    training = _in_train_mode(extractor)
    if training:
        return (f"{len(training)} layer(s) are in train mode ({', '.join(sorted(set(training)))}): "
                f"BatchNorm would normalise with each batch's statistics and update its "
                f"running ones, so the same photo would not always give the same features. "
                f"Fix: return extractor.eval().")
    try:
        with torch.no_grad():
            output = extractor(images)
    except Exception as error:
        return (f"The extractor of a {name} failed on images of shape {tuple(images.shape)}: "
                f"{type(error).__name__}: {error}. Fix: keep the model's layers in their order.")
    if not isinstance(output, torch.Tensor):
        return (f"The extractor returned a {type(output).__name__}, not a tensor of features. "
                f"Fix: return a module whose forward gives one (B, D) tensor.")
    want = (images.shape[0], features)
    if tuple(output.shape) != want:
        return f"For a {name}, " + _shape_problem(tuple(output.shape), want, num_classes)
    if not torch.allclose(output, expected, rtol=1e-4, atol=1e-5):
        return (f"For a {name} the features have the right shape {want} but other values than "
                f"the model's own pooled features (largest difference "
                f"{(output - expected).abs().max().item():.3g}). New layers or new weights "
                f"throw the pre-trained features away. Fix: reuse the model you are given and "
                f"remove only its head.")
    return None


@register_checker("feature_extractor")
def check_feature_extractor(make_feature_extractor: Any) -> CheckResult:
    """``make_feature_extractor(model)`` must turn any torchvision ResNet into a frozen module,
    in eval mode, that returns the (B, D) features the model's head reads."""
    from torch import nn

    if isinstance(make_feature_extractor, nn.Module) or not callable(make_feature_extractor):
        return CheckResult(False, f"Expected the function make_feature_extractor itself, got a "
                                  f"{type(make_feature_extractor).__name__}. The checker calls "
                                  f"it on ResNets of its own. Fix: {HAND_IN}.")
    sizes = []
    for name, model in probe_resnets().items():
        sizes.append(str(model.fc.in_features))  # read now: the learner may replace model.fc
        problem = _check_one(make_feature_extractor, name, model)
        if problem:
            return CheckResult(False, problem)
    return CheckResult(True, f"Well done: frozen, in eval mode, and exactly the features each "
                             f"ResNet's head reads ({' and '.join(sizes)} numbers per image).")
