"""Checker for lesson 05 (feature extraction): ``make_feature_extractor(model)`` turns a
torchvision ResNet into a frozen feature extractor. It runs on two small ResNets of the
checker's own (512 and 2048 features), compared with each model's own pooled features."""

import copy
import functools

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

from labkit.exercises.checks import (batchnorms, build, checker, drifting_batchnorms,
                                     expect_callable, forward, require)
from labkit.vision import count_parameters


@functools.cache
def _probe_resnets() -> dict:
    """Small ResNets whose BatchNorm statistics are not the defaults, so a layer in the wrong
    mode changes the output. Copy before use: the learner may change the model."""
    generator = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():  # the learner's random stream is left alone
        torch.manual_seed(0)
        models = {"ResNet of basic blocks": ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10),
                  "ResNet of bottleneck blocks": ResNet(Bottleneck, [1, 1, 1, 1], num_classes=10)}
    for norm in (n for model in models.values() for n in batchnorms(model)):
        norm.running_mean.copy_(torch.randn(norm.num_features, generator=generator) * 0.1)
        norm.running_var.copy_(torch.rand(norm.num_features, generator=generator) + 0.5)
    return {name: model.eval() for name, model in models.items()}


def _shape_fix(shape: tuple, batch: int, features: int, num_classes: int) -> str:
    if shape == (batch, num_classes):
        return (f"one score per class of the old head. Fix: model.fc = nn.Identity(), so the "
                f"pooled {features} features come out instead.")
    if shape == (batch, features, 1, 1):
        return ("the pooled features, not yet flattened. Fix: add nn.Flatten() after the "
                "pooling (or keep the model's forward and set model.fc = nn.Identity()).")
    if shape[:2] == (batch, features) or len(shape) == 2 and shape[1] % features == 0:
        return (f"the {features} channels at every position of the last feature map: the global "
                f"average pooling is missing. Fix: keep model.avgpool; only model.fc goes.")
    return (f"expected ({batch}, {features}), the numbers the head reads per image. Fix: keep "
            f"every layer up to and including the pooling, flatten, and drop only model.fc.")


@checker
def check_feature_extractor(make_feature_extractor) -> str:
    """``make_feature_extractor(model)`` turns any torchvision ResNet into a frozen module, in
    eval mode, that returns the (B, D) features the model's head reads."""
    expect_callable(make_feature_extractor, 'quiz.answer("build_extractor", '
                    'make_feature_extractor)', "the function make_feature_extractor")
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    sizes = []
    for name, model in copy.deepcopy(_probe_resnets()).items():
        reference, (num_classes, features) = copy.deepcopy(model), model.fc.weight.shape
        reference.fc = nn.Identity()
        with torch.no_grad():
            expected = reference(images)  # (B, D): what the head reads
        extractor = build(f"make_feature_extractor on a {name}", "take a torchvision ResNet and "
                          "return a module: the model, changed, or an nn.Sequential.",
                          make_feature_extractor, model)
        trainable = count_parameters(extractor, trainable=True)
        require(not trainable, f"{trainable:,} parameters of the extractor still require grad, "
                f"so an optimizer could change the backbone. Fix: extractor.requires_grad_(False).")
        require(not drifting_batchnorms(extractor), "BatchNorm layers are in train mode: they "
                "would normalise with each batch's statistics and move their running ones, so a "
                "photo's features would change. Fix: return extractor.eval().")
        output = forward(f"The extractor of a {name}", "keep the model's layers in their order.",
                         extractor, images)
        require(output.shape == expected.shape, f"For a {name} the extractor returns "
                f"{tuple(output.shape)}: " + _shape_fix(tuple(output.shape), 2, features,
                                                       num_classes))
        require(torch.allclose(output, expected, rtol=1e-4, atol=1e-5), f"For a {name} the "
                f"features have the right shape but other values than the model's own pooled "
                f"features: new layers or weights throw the pre-trained ones away. Fix: reuse "
                f"the model you are given and remove only its head.")
        sizes.append(str(features))
    return (f"Well done: frozen, in eval mode, and exactly the features each ResNet's head reads "
            f"({' and '.join(sizes)} numbers per image).")
