"""Checker for lesson 03 (ResNet): a basic residual block that adds a projection shortcut
when its output shape differs from its input.

The learner hands in the class (or any factory) ``ResidualBlock(in_channels, out_channels,
stride)``. The checker builds its own instances, never touches the learner's object, and
probes them by behaviour rather than by attribute names:

1. the block runs on a (2, in_channels, 8, 8) input and returns the right shape;
2. with every 3x3 convolution set to zero the residual branch F(x) is zero, so a correct
   block returns exactly relu(shortcut(x)): relu(x) when the shape stays the same, relu of
   the 1x1 projection otherwise. All zeros means no shortcut; negative values mean the ReLU
   comes before the addition (or is missing);
3. its parameter count equals torchvision's ``BasicBlock`` with the same shortcut.
"""

from __future__ import annotations

from typing import Any

from labkit.quiz.checkers import CheckResult, register_checker

__all__ = ["check_residual_block", "torchvision_basic_block", "projection_shortcut"]

SIZE = 8  # height and width of the probe input: small, and divisible by the stride


def projection_shortcut(in_channels: int, out_channels: int, stride: int = 1):
    """The shortcut ResNet uses when the shape changes: a strided 1x1 conv, then BatchNorm."""
    from torch import nn

    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_channels))


def torchvision_basic_block(in_channels: int, out_channels: int, stride: int = 1):
    """torchvision's BasicBlock, with a projection shortcut exactly when the shape changes."""
    from torchvision.models.resnet import BasicBlock

    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = projection_shortcut(in_channels, out_channels, stride)
    return BasicBlock(in_channels, out_channels, stride, downsample)


def _count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _build(block_class, in_channels: int, out_channels: int, stride: int):
    """(block, None) or (None, CheckResult saying why it could not be built)."""
    from torch import nn

    call = f"ResidualBlock({in_channels}, {out_channels}, {stride})"
    try:
        block = block_class(in_channels, out_channels, stride)
    except TypeError as error:
        return None, CheckResult(False, f"Could not build {call}: {error}. Fix: define "
                                        f"__init__(self, in_channels, out_channels, stride=1).")
    except Exception as error:  # noqa: BLE001  (any error in the learner's __init__)
        return None, CheckResult(False, f"Building {call} raised {type(error).__name__}: "
                                        f"{error}. Fix: run that line in a cell and correct "
                                        f"the __init__ method.")
    if not isinstance(block, nn.Module):
        return None, CheckResult(False, f"{call} returned a {type(block).__name__}, not a "
                                        f"torch.nn.Module. Fix: subclass nn.Module.")
    return block.eval(), None  # eval: BatchNorm uses its (fresh) running statistics


def _run(block, x, call: str):
    """(output, None) or (None, CheckResult) for a forward pass on a copy of ``x``."""
    import torch

    try:
        with torch.no_grad():
            out = block(x.clone())  # clone: an in-place ReLU must not change the probe
    except RuntimeError as error:
        first_line = str(error).splitlines()[0]
        return None, CheckResult(False, (
            f"{call} failed on a {tuple(x.shape)} input: {first_line}. Most often the "
            f"shortcut does not match the residual branch: when stride != 1 or the channels "
            f"change, x itself cannot be added to F(x), and only the first 3x3 conv of "
            f"F may take the stride. Fix: use a projection shortcut (a 1x1 conv with the "
            f"stride, then BatchNorm), "
            f"nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, "
            f"bias=False), nn.BatchNorm2d(out_channels)), and add shortcut(x)."))
    if not isinstance(out, torch.Tensor):
        return None, CheckResult(False, f"{call} returned a {type(out).__name__}, not a "
                                        f"tensor. Fix: forward must return the output tensor.")
    return out, None


def _zero_residual_branch(block) -> None:
    """Make F(x) zero (every 3x3 conv) and every BatchNorm the identity (weight 1, bias 0)."""
    import torch
    from torch import nn

    with torch.no_grad():
        for module in block.modules():
            if isinstance(module, nn.Conv2d) and module.kernel_size != (1, 1):
                module.weight.zero_()
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.modules.batchnorm._BatchNorm) and module.affine:
                module.weight.fill_(1.0)
                module.bias.zero_()


def _expected_shortcut(block, x):
    """relu(shortcut(x)) for a block whose F(x) is zero: the identity, or the 1x1 conv
    followed by a BatchNorm with fresh statistics (which divides by sqrt(1 + eps))."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    ones = [m for m in block.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
    if len(ones) != 1:
        return torch.relu(x)
    conv = ones[0]
    shortcut = F.conv2d(x, conv.weight, conv.bias, stride=conv.stride)
    return torch.relu(shortcut / (1 + 1e-5) ** 0.5)


def _check_addition(block, x, call: str, shape_changes: bool) -> CheckResult | None:
    import torch
    from torch import nn

    _zero_residual_branch(block)
    out, problem = _run(block, x, call)
    if problem:
        return problem
    has_projection = any(isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)
                         for m in block.modules())
    if out.abs().max() < 1e-6:
        if shape_changes:
            return CheckResult(False, (
                f"{call} has no shortcut: with its 3x3 convolutions set to zero it outputs "
                f"only zeros, so nothing of x gets through. Fix: when the shape changes, "
                f"project x with a 1x1 conv (stride=stride) and BatchNorm, and return "
                f"relu(F(x) + shortcut(x))."))
        return CheckResult(False, (
            f"{call} has no shortcut: with its 3x3 convolutions set to zero it outputs only "
            f"zeros, so x is never added back. Fix: return relu(F(x) + x); when the shape "
            f"stays the same the shortcut is x itself."))
    if out.min() < -1e-6:
        return CheckResult(False, (
            f"{call} can output negative values, so its last step is not a ReLU after the "
            f"addition (the ReLU comes before adding the shortcut, or is missing). Fix: "
            f"out = bn2(conv2(...)); out = out + shortcut(x); return relu(out)."))
    if shape_changes and not has_projection:
        return CheckResult(False, (
            f"{call} changes the shape but its shortcut has no 1x1 convolution (a "
            f"parameter-free shortcut, such as subsampling and zero-padding, is not what "
            f"torchvision's ResNets use). Fix: shortcut = nn.Sequential(nn.Conv2d("
            f"in_channels, out_channels, 1, stride=stride, bias=False), "
            f"nn.BatchNorm2d(out_channels))."))
    expected = _expected_shortcut(block, x)
    if out.shape != expected.shape or not torch.allclose(out, expected, rtol=1e-3, atol=1e-5):
        return CheckResult(False, (
            f"{call} does not compute relu(F(x) + shortcut(x)): with F(x) set to zero its "
            f"output should be relu(shortcut(x)) but is not. Fix: the shortcut is x itself "
            f"when the shape stays the same, or BatchNorm(1x1 conv(x)) when it changes; add "
            f"it to F(x) unchanged, then apply ReLU once."))
    return None


def _stride_placement(block, in_channels: int, out_channels: int, stride: int) -> str | None:
    from torch import nn

    if stride == 1 or in_channels == out_channels:
        return None
    for module in block.modules():
        if (isinstance(module, nn.Conv2d) and module.kernel_size != (1, 1)
                and module.in_channels == out_channels and module.stride != (1, 1)):
            return ("The stride sits on the second 3x3 conv. Fix: give the first 3x3 conv "
                    "stride=stride and the second stride 1, as torchvision's BasicBlock "
                    "does; the first conv then already works on the smaller map, a quarter "
                    "of the positions.")
    return None


def _count_problem(block, reference: int, call: str) -> str:
    from torch import nn

    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    norms = [m for m in block.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    found = _count(block)
    if any(conv.bias is not None for conv in convs):
        fix = ("Fix: build every conv with bias=False; the BatchNorm after it has its own "
               "shift, so a conv bias is wasted.")
    elif len(norms) < len(convs):
        fix = (f"Fix: put a BatchNorm2d after every conv, the 1x1 shortcut conv included "
               f"(your block has {len(convs)} convs and {len(norms)} BatchNorm layers).")
    else:
        fix = ("Fix: two 3x3 convs (padding=1, bias=False), each followed by BatchNorm2d, "
               "and a 1x1 conv + BatchNorm2d shortcut only when the shape changes.")
    return (f"{call} has {found:,} parameters; torchvision's BasicBlock with the same "
            f"shortcut has {reference:,}. {fix}")


@register_checker("residual_block")
def check_residual_block(block_class: Any, *, in_channels: int = 64, out_channels: int = 128,
                         stride: int = 2) -> CheckResult:
    """A basic residual block class: right shape, relu(F(x) + shortcut(x)), a projection
    shortcut exactly when the shape changes, and torchvision's parameter count."""
    import torch
    from torch import nn

    if isinstance(block_class, nn.Module):
        return CheckResult(False, "You handed in one block (an instance). Fix: hand in the "
                                  "class itself, quiz.answer('residual_block', ResidualBlock), "
                                  "so the checker can build it with other shapes.")
    if not callable(block_class):
        return CheckResult(False, f"Expected a class, got a {type(block_class).__name__}. "
                                  f"Fix: pass ResidualBlock, the class you wrote.")
    torch.manual_seed(0)  # the same weights every time; grading restores the learner's stream
    return _check(block_class, in_channels, out_channels, stride)


def _check(block_class, in_channels: int, out_channels: int, stride: int) -> CheckResult:
    import torch

    x = torch.randn(2, in_channels, SIZE, SIZE)  # (B, C_in, H, W)
    call = f"ResidualBlock({in_channels}, {out_channels}, {stride})"
    block, problem = _build(block_class, in_channels, out_channels, stride)
    if problem:
        return problem
    out, problem = _run(block, x, call)
    if problem:
        return problem
    expected = (2, out_channels, SIZE // stride, SIZE // stride)
    if out.shape[:2] != expected[:2]:
        return CheckResult(False, f"{call} returns {out.shape[1] if out.ndim > 1 else '?'} "
                                  f"channels, expected {out_channels}. Fix: the second 3x3 "
                                  f"conv and the shortcut must both output out_channels.")
    if tuple(out.shape) != expected:
        return CheckResult(False, (
            f"Wrong stride: on an {SIZE}x{SIZE} input {call} returns "
            f"{out.shape[-2]}x{out.shape[-1]} maps, expected {expected[2]}x{expected[3]}. "
            f"Fix: give the first 3x3 conv stride=stride and the shortcut's 1x1 conv the same "
            f"stride; the second 3x3 conv keeps stride 1 (all 3x3 convs use padding=1)."))
    message = _stride_placement(block, in_channels, out_channels, stride)
    if message:
        return CheckResult(False, message)

    # Same shape in and out: the shortcut must be x itself.
    same, problem = _build(block_class, out_channels, out_channels, 1)
    if problem:
        return problem
    same_call = f"ResidualBlock({out_channels}, {out_channels}, 1)"
    x_same = torch.randn(2, out_channels, SIZE, SIZE)
    problem = _check_addition(same, x_same, same_call, shape_changes=False)
    if problem:
        return problem
    changes = stride != 1 or in_channels != out_channels
    problem = _check_addition(block, x, call, shape_changes=changes)
    if problem:
        return problem

    reference = _count(torchvision_basic_block(in_channels, out_channels, stride))
    if _count(block) != reference:
        return CheckResult(False, _count_problem(block, reference, call))
    same_reference = _count(torchvision_basic_block(out_channels, out_channels, 1))
    same_count = _count(same)
    if same_count != same_reference:
        extra = same_count - same_reference
        if extra > 0:
            return CheckResult(False, (
                f"{same_call} has {extra:,} parameters more than torchvision's BasicBlock: "
                f"when the shape does not change the shortcut should be the identity, which "
                f"costs 0 parameters. Fix: build the projection only if stride != 1 or "
                f"in_channels != out_channels, and use x itself otherwise."))
        return CheckResult(False, _count_problem(same, same_reference, same_call))
    shortcut = "its identity shortcut costs none"
    if changes:
        projection = _count(projection_shortcut(in_channels, out_channels, stride))
        shortcut = (f"its projection shortcut costs {projection:,} of them, and the identity "
                    f"shortcut of {same_call} costs none")
    return CheckResult(True, (
        f"Well done: {call} computes relu(F(x) + shortcut(x)) with {reference:,} parameters, "
        f"the same as torchvision's BasicBlock; {shortcut}."))
