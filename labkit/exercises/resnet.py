"""Checker for lesson 03 (ResNet): the learner's class ``ResidualBlock(in_channels, out_channels,
stride)``, probed by behaviour: with its 3x3 convs set to zero F(x) is zero, so a correct block
returns relu(shortcut(x)); and its parameters are those of torchvision's ``BasicBlock``."""

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import BasicBlock

from labkit.exercises.checks import batchnorms, build, checker, expect_callable, forward, require
from labkit.vision import count_parameters

SIZE = 8  # height and width of the probe input: small, and divisible by the stride
INIT_FIX = "subclass nn.Module and define __init__(self, in_channels, out_channels, stride=1)."
FORWARD_FIX = ("when the shape changes, x itself cannot be added to F(x): add a projection "
               "shortcut(x), a 1x1 conv and BatchNorm, nn.Sequential(nn.Conv2d(in_channels, "
               "out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)).")


def projection_shortcut(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """The shortcut ResNet uses when the shape changes: a strided 1x1 conv, then BatchNorm."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_channels))


def torchvision_basic_block(in_channels: int, out_channels: int, stride: int = 1) -> BasicBlock:
    """torchvision's BasicBlock, with a projection shortcut exactly when the shape changes."""
    changes = stride != 1 or in_channels != out_channels
    return BasicBlock(in_channels, out_channels, stride,
                      projection_shortcut(in_channels, out_channels, stride) if changes else None)


def _is_3x3(module) -> bool:  # the residual branch's convs; the projection's is 1x1
    return isinstance(module, nn.Conv2d) and module.kernel_size != (1, 1)


def _check_addition(block, x, call: str, shape_changes: bool) -> None:
    """With F(x) zero and BatchNorm the identity, the block must return relu(shortcut(x))."""
    with torch.no_grad():
        for conv in filter(_is_3x3, block.modules()):
            conv.weight.zero_()
            if conv.bias is not None:
                conv.bias.zero_()
        for norm in (n for n in batchnorms(block) if n.affine):
            norm.weight.fill_(1.0)
            norm.bias.zero_()
    out = forward(call, FORWARD_FIX, block, x)
    fix = ("when the shape changes, project x with a 1x1 conv (stride=stride) and BatchNorm" if
           shape_changes else "return relu(F(x) + x); when the shape stays the same, x itself")
    require(out.abs().max() > 1e-6, f"{call} has no shortcut: with its 3x3 convs set to zero it "
                                    f"outputs only zeros, so x never gets through. Fix: {fix}.")
    require(out.min() > -1e-6, f"{call} can output negative values: the ReLU comes before the "
                               f"addition, or is missing. Fix: return relu(out + shortcut(x)), "
                               f"the ReLU after the addition.")
    ones = [m for m in block.modules() if isinstance(m, nn.Conv2d) and not _is_3x3(m)]
    expected = torch.relu(x)
    if len(ones) == 1:  # the 1x1 conv, then BatchNorm with fresh statistics: / sqrt(1 + eps)
        shortcut = F.conv2d(x, ones[0].weight, ones[0].bias, stride=ones[0].stride)
        expected = torch.relu(shortcut / (1 + 1e-5) ** 0.5)
    require(out.shape == expected.shape and torch.allclose(out, expected, rtol=1e-3, atol=1e-5),
            f"{call} does not compute relu(F(x) + shortcut(x)): with F(x) zero it should return "
            f"relu(shortcut(x)). Fix: add the shortcut (x, or BatchNorm(1x1 conv(x)) when the "
            f"shape changes) to F(x) unchanged, then apply ReLU once.")


@checker
def check_residual_block(block_class, *, in_channels: int = 64, out_channels: int = 128,
                         stride: int = 2) -> str:
    """Right shape, relu(F(x) + shortcut(x)), a projection shortcut exactly when the shape
    changes, and torchvision's parameter count."""
    expect_callable(block_class, "quiz.answer('residual_block', ResidualBlock)", "a class")
    torch.manual_seed(0)  # the same weights every time; grading restores the learner's stream
    call = f"ResidualBlock({in_channels}, {out_channels}, {stride})"
    block = build(call, INIT_FIX, block_class, in_channels, out_channels, stride).eval()
    x, small = torch.randn(2, in_channels, SIZE, SIZE), SIZE // stride  # x: (B, C_in, H, W)
    out = forward(call, FORWARD_FIX, block, x)
    require(tuple(out.shape) == (2, out_channels, small, small), f"Wrong stride or channels: on "
            f"an {SIZE}x{SIZE} input {call} returns {tuple(out.shape)}, expected {out_channels} "
            f"maps of {small}x{small}. Fix: both 3x3 convs output out_channels; the first one and "
            f"the shortcut's 1x1 conv take stride=stride.")
    changes = stride != 1 or in_channels != out_channels
    require(not changes or not any(_is_3x3(m) and m.in_channels == out_channels != in_channels
                                   and m.stride != (1, 1) for m in block.modules()),
            "The stride sits on the second 3x3 conv. Fix: give the first 3x3 conv stride=stride "
            "and the second stride 1, as torchvision's BasicBlock does: the first conv then "
            "already works on the smaller map.")
    same_call = f"ResidualBlock({out_channels}, {out_channels}, 1)"  # the shortcut must be x
    same = build(same_call, INIT_FIX, block_class, out_channels, out_channels, 1).eval()
    _check_addition(same, torch.randn(2, out_channels, SIZE, SIZE), same_call, False)
    _check_addition(block, x, call, changes)
    reference = count_parameters(torchvision_basic_block(in_channels, out_channels, stride))
    same_reference = count_parameters(torchvision_basic_block(out_channels, out_channels, 1))
    for name, module, expected in ((call, block, reference), (same_call, same, same_reference)):
        convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
        fix = ("bias=False in every conv: the BatchNorm after it has its own shift"
               if any(conv.bias is not None for conv in convs) else
               "a BatchNorm2d after every conv, the 1x1 shortcut conv included"
               if len(batchnorms(module)) < len(convs) else "a projection only if stride != 1 "
               "or in_channels != out_channels: the identity shortcut costs 0 parameters")
        require(count_parameters(module) == expected, f"{name} has {count_parameters(module):,} "
                f"parameters; torchvision's BasicBlock has {expected:,}. Fix: {fix}.")
    projection = count_parameters(projection_shortcut(in_channels, out_channels, stride))
    shortcut = (f"its projection shortcut costs {projection:,} of them, an identity shortcut "
                f"none" if changes else "its identity shortcut costs none")
    return (f"Well done: {call} computes relu(F(x) + shortcut(x)) with {reference:,} parameters, "
            f"the same as torchvision's BasicBlock; {shortcut}.")
