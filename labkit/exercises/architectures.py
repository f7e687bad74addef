"""Checkers for lessons 02 (VGG), 03 (ResNet) and 04 (Inception): the block each lesson writes."""

import functools
from collections import Counter

import torch
from torch import nn
from torch.nn.modules.utils import _pair
from torch.overrides import TorchFunctionMode
from torchvision.models.resnet import BasicBlock

from labkit.exercises.checks import (Mistake, attempt, batchnorms, checker, for_each_size,
                                     forward, require)
from labkit.vision import count_parameters

CONV_FIX = "nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)"
VGG_POOL_FIX = "nn.MaxPool2d(kernel_size=2, stride=2)"


def _leaves(module) -> list:
    # _modules rather than modules(): modules() lists a reused nn.ReLU() only once.
    children = [m for m in module._modules.values() if m is not None]
    return [leaf for child in children for leaf in _leaves(child)] if children else [module]


def _check_vgg_size(vgg_block, num_convs: int, in_channels: int, out_channels: int) -> int:
    call = f"vgg_block({num_convs}, {in_channels}, {out_channels})"
    block = attempt(call, "make vgg_block(num_convs, in_channels, out_channels) return nn."
                    "Sequential(*layers).", vgg_block, num_convs, in_channels, out_channels,
                    returns=nn.Module)
    leaves = _leaves(block)
    names = ", ".join(type(m).__name__ for m in leaves)
    pools = [m for m in leaves if isinstance(m, nn.MaxPool2d)]
    require(len(pools) == 1 and leaves[-1] is pools[0], f"The block has {len(pools)} max-pools "
            f"({names}); VGG ends with exactly one max-pool. Fix: {VGG_POOL_FIX} after the loop.")
    kernel, stride = pools[0].kernel_size, pools[0].stride
    require(_pair(kernel) == _pair(stride) == (2, 2), f"The max-pool has kernel_size {kernel}, "
                                                      f"stride {stride}. Fix: {VGG_POOL_FIX}.")
    expected = [nn.Conv2d, nn.ReLU] * num_convs + [nn.MaxPool2d]  # with one pool, at the end
    for index, (layer, kind) in enumerate(zip(leaves, expected), 1):
        fix = ("a conv, then nn.ReLU(inplace=True), num_convs times: without ReLUs, stacked convs "
               "are one linear map" if isinstance(layer, (nn.Conv2d, nn.ReLU, nn.MaxPool2d)) else
               "remove it (BatchNorm belongs to vgg16_bn)")
        require(isinstance(layer, kind), f"Layer {index} is {type(layer).__name__} where a "
                                         f"{kind.__name__} belongs ({names}). Fix: {fix}.")
    for index, conv in enumerate(leaves[0:-1:2], 1):
        where, c_in = f"Convolution {index}", in_channels if index == 1 else out_channels
        require(conv.kernel_size == (3, 3), f"{where} has kernel_size {conv.kernel_size}; VGG "
                f"uses only 3x3 kernels (two see as far as one 5x5). Fix: {CONV_FIX}.")
        pad = 1 if conv.padding == "same" else _pair(conv.padding)[0]  # "same" is 1 for 3x3
        require(pad == 1, f"{where} has padding {pad}, which shrinks or grows the map; in a VGG "
                          f"block only the max-pool changes its size. Fix: {CONV_FIX}.")
        require((conv.stride, conv.dilation, conv.groups) == ((1, 1), (1, 1), 1), f"{where} has "
                f"stride {conv.stride}, dilation {conv.dilation}, groups {conv.groups}. Fix: "
                f"stride=1, dilation=1, groups=1: only the max-pool downsamples.")
        require((conv.in_channels, conv.out_channels) == (c_in, out_channels), f"{where} maps "
                f"{conv.in_channels} -> {conv.out_channels} channels, not {c_in} -> {out_channels}."
                f" Fix: the first conv takes in_channels, every later one takes out_channels.")
        require(conv.bias is not None, f"{where} has no bias. Fix: bias=True, the default.")
    return count_parameters(block)


@checker('quiz.answer("build_block", vgg_block)', "the function vgg_block")
def check_vgg_block(vgg_block, *, num_convs: int = 3, in_channels: int = 128,
                    out_channels: int = 256) -> str:
    """Lesson 02: conv3x3 (padding 1) and ReLU ``num_convs`` times, then a 2x2 max-pool."""
    count = for_each_size(functools.partial(_check_vgg_size, vgg_block),
                          (num_convs, in_channels, out_channels), (2, 3, 8))
    return (f"Well done: vgg_block({num_convs}, {in_channels}, {out_channels}) has the VGG layout"
            f" and {count:,} parameters.")


SIZE = 8  # height and width of the probe input: small, and divisible by the stride
INIT_FIX = "subclass nn.Module and define __init__(self, in_channels, out_channels, stride=1)."
FORWARD_FIX = ("when the shape changes, add a projection shortcut(x): a 1x1 nn.Conv2d(in_channels, "
               "out_channels, 1, stride=stride, bias=False), then nn.BatchNorm2d(out_channels).")


def projection_shortcut(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    """The shortcut ResNet uses when the shape changes: a strided 1x1 conv, then BatchNorm."""
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                         nn.BatchNorm2d(out_channels))


def torchvision_basic_block(in_channels: int, out_channels: int, stride: int = 1) -> BasicBlock:
    """torchvision's BasicBlock, with a projection shortcut exactly when the shape changes."""
    changes = stride != 1 or in_channels != out_channels
    shortcut = projection_shortcut(in_channels, out_channels, stride) if changes else None
    return BasicBlock(in_channels, out_channels, stride, shortcut)


def _check_block(block_class, in_channels: int, out_channels: int, stride: int) -> int:
    """Shape, stride, addition and parameter count of one block; returns torchvision's count."""
    call = f"ResidualBlock({in_channels}, {out_channels}, {stride})"
    block = attempt(call, INIT_FIX, block_class, in_channels, out_channels, stride,
                    returns=nn.Module).eval()
    x, small = torch.randn(2, in_channels, SIZE, SIZE), SIZE // stride  # x: (B, C_in, H, W)
    out = forward(call, FORWARD_FIX, block, x)
    require(tuple(out.shape) == (2, out_channels, small, small), f"Wrong stride or channels: on "
            f"an {SIZE}x{SIZE} input {call} returns {tuple(out.shape)}, not {out_channels} maps of "
            f"{small}x{small}. Fix: the first 3x3 conv and the 1x1 projection take stride=stride.")
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    require(not any(m.in_channels == out_channels != in_channels and m.stride != (1, 1)
                    for m in convs), "The stride sits on the second 3x3 conv. Fix: give the first "
            "3x3 conv stride=stride and the second stride 1, as torchvision's BasicBlock does.")
    with torch.no_grad():  # F(x) zero, and a fresh BatchNorm is the identity: relu(shortcut(x))
        for param in (p for conv in convs if conv.kernel_size != (1, 1) for p in conv.parameters()):
            param.zero_()
    out = forward(call, FORWARD_FIX, block, x)
    changes = stride != 1 or in_channels != out_channels
    fix = ("when the shape changes, project x with a 1x1 conv (stride=stride) and BatchNorm" if
           changes else "return relu(F(x) + x); when the shape stays the same, x itself")
    require(out.abs().max() > 1e-6, f"{call} has no shortcut: with its 3x3 convs set to zero it "
                                    f"outputs only zeros, so x never gets through. Fix: {fix}.")
    require(out.min() > -1e-6, f"{call} can output negative values: the ReLU is missing or comes "
            f"first. Fix: return relu(out + shortcut(x)), the ReLU after the addition.")
    expected = count_parameters(torchvision_basic_block(in_channels, out_channels, stride))
    fix = ("bias=False in every conv: the BatchNorm after it has its own shift"
           if any(conv.bias is not None for conv in convs) else
           "a BatchNorm2d after every conv, the 1x1 shortcut conv included"
           if len(batchnorms(block)) < len(convs) else "a projection only if stride != 1 "
           "or in_channels != out_channels: the identity shortcut costs 0 parameters")
    require(count_parameters(block) == expected, f"{call} has {count_parameters(block):,} "
            f"parameters; torchvision's BasicBlock has {expected:,}. Fix: {fix}.")
    return expected


@checker("quiz.answer('residual_block', ResidualBlock)", "a class")
def check_residual_block(block_class, *, in_channels: int = 64, out_channels: int = 128,
                         stride: int = 2) -> str:
    """Lesson 03: relu(F(x) + shortcut(x)), projecting x only when the shape changes."""
    torch.manual_seed(0)  # the same weights every time; grading restores the learner's stream
    _check_block(block_class, out_channels, out_channels, 1)  # first a shortcut that is x itself
    reference = _check_block(block_class, in_channels, out_channels, stride)
    shortcut = reference - count_parameters(BasicBlock(in_channels, out_channels, stride))
    return (f"Well done: relu(F(x) + shortcut(x)) with {reference:,} parameters, as torchvision's "
            f"BasicBlock; its shortcut costs {shortcut:,} of them.")


WIDTHS = ("in_channels", "ch1x1", "ch3x3red", "ch3x3", "ch5x5red", "ch5x5", "pool_proj")
SMALL = dict(zip(WIDTHS, (12, 4, 6, 8, 3, 5, 7)))  # all different: no sum of branches fits
INCEPTION_POOL_FIX = "nn.MaxPool2d(kernel_size=3, stride=1, padding=1)"
CAT_FIX = "torch.cat([branch1, branch2, branch3, branch4], dim=1)"
POOLS = {"max_pool2d", "avg_pool2d", "max_pool2d_with_indices", "lp_pool2d"}
JOINS = {"cat", "concat", "concatenate", "stack"}
ADDS = {"add", "add_", "__add__", "__radd__", "__iadd__", "sum"}
RELUS = {"relu", "relu_"}


def inception_convs(in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int,
                    ch5x5: int, pool_proj: int, *, big_kernel: int = 5) -> list[tuple]:
    """(c_in, c_out, k) of the module's six convolutions, branch by branch."""
    return [(in_channels, ch1x1, 1), (in_channels, ch3x3red, 1), (ch3x3red, ch3x3, 3),
            (in_channels, ch5x5red, 1), (ch5x5red, ch5x5, big_kernel), (in_channels, pool_proj, 1)]


def inception_multiplies(height: int, width: int, *, big_kernel: int = 5, **widths) -> int:
    """Multiplications of the module's convs for one image (padding keeps height x width)."""
    return sum(height * width * c_out * c_in * k * k
               for c_in, c_out, k in inception_convs(**widths, big_kernel=big_kernel))


class _Trace(TorchFunctionMode):
    """Records (name, detail) per torch call; a conv or pooling that changes the size raises."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs, name = kwargs or {}, getattr(func, "__name__", "")

        def arg(index, key, default=None):
            return args[index] if len(args) > index else kwargs.get(key, default)
        detail = arg(1, "dim", 0)  # a join's dim; a conv's (c_out, c_in, kh, kw)
        if name == "conv2d":  # its weight is (c_out, c_in / groups, kh, kw)
            c_out, c_in, kh, kw = arg(1, "weight").shape
            detail = (c_out, c_in * arg(6, "groups", 1), kh, kw)
        self.calls.append((name, detail))  # before the call: one that raises is recorded too
        result = func(*args, **kwargs)
        if name not in POOLS | {"conv2d"}:
            return result
        before = arg(0, "input").shape[-2:]
        after = (result[0] if isinstance(result, tuple) else result).shape[-2:]  # with indices?
        if before == after:
            return result
        what, fix = "pooling in the fourth branch", INCEPTION_POOL_FIX + (
            ": its stride defaults to the kernel size" if after[-1] * 2 <= before[-1]
            else ": without padding=1 a 3x3 window trims the edges")
        if name == "conv2d":
            what, fix = f"{kh}x{kw} convolution ({c_in} -> {c_out})", f"padding={kh // 2}, stride=1"
        raise Mistake(f"The {what} turns the {before[0]}x{before[1]} map into {after[0]}x"
                      f"{after[1]}, so the branches cannot be concatenated. Fix: {fix}.")


def _check_inception_size(module_class, widths: dict, size: int) -> int:
    call = (f"{getattr(module_class, '__name__', 'your class')}"
            f"({', '.join(f'{name}={widths[name]}' for name in WIDTHS)})")
    module = attempt(call, f"subclass nn.Module, call super().__init__() first, and take the "
                     f"keyword arguments {', '.join(WIDTHS)}.", module_class, **widths,
                     returns=nn.Module)
    x, trace = torch.randn(2, widths["in_channels"], size, size), _Trace()
    try:
        with torch.no_grad(), trace:
            y = module.eval()(x)  # eval: BatchNorm uses its running statistics
    except Mistake:
        raise
    except Exception as error:  # noqa: BLE001  (the learner's code: the trace says what failed)
        failure, names = f"({type(error).__name__}: {error})", {name for name, _ in trace.calls}
        joins = [detail for name, detail in trace.calls if name in JOINS]
        require(not joins or joins[-1] in (1, -3), f"{call}: the branches are joined along dim "
                f"{joins[-1] if joins else ''} {failure}; channels are dim 1. Fix: {CAT_FIX}.")
        require(joins or not names & ADDS, f"{call}: the forward pass "
                f"adds branches of different widths {failure}. Fix: stack them, {CAT_FIX}.")
        raise Mistake(f"{call} failed on an input of shape {tuple(x.shape)} {failure}. Fix: check "
                      f"each conv's channels, and that each branch reads the input x.") from None
    require({name for name, _ in trace.calls} & POOLS, f"{call}: no pooling ran, so the fourth "
            f"branch is missing. Fix: {INCEPTION_POOL_FIX}, then a 1x1 conv to pool_proj.")
    expected = Counter((c_out, c_in, k, k) for c_in, c_out, k in inception_convs(**widths))
    found = Counter(detail for name, detail in trace.calls if name == "conv2d")
    missing, extra, c_in = expected - found, found - expected, widths["in_channels"]
    for c_out, red, kh, kw in missing:
        require(kh == 1 or (c_out, c_in, kh, kw) not in extra, f"{call}: the {kh}x{kw} conv "
                f"reads all {c_in} input channels, without the 1x1 reduction to {red} channels. "
                f"Fix: nn.Conv2d(in_channels, {red}, kernel_size=1) and a ReLU first.")
        require(kh != 5 or (c_out, red, 3, 3) not in extra, f"{call}: after the {red}-channel "
                f"reduction the paper has a 5x5 conv, not 3x3 (torchvision's GoogLeNet keeps that "
                f"bug for its weights). Fix: kernel_size=5, padding=2.")
    require(not missing and not extra, f"{call}: its convs (c_out, c_in, kh, kw) are "
            f"{list(found.elements())}. Fix: exactly these, {list(expected.elements())}.")
    want = (2, sum(widths[name] for name in ("ch1x1", "ch3x3", "ch5x5", "pool_proj")), size, size)
    require(getattr(y, "shape", None) == want, f"{call} returns {getattr(y, 'shape', type(y))}, "
            f"expected {want}: ch1x1 + ch3x3 + ch5x5 + pool_proj channels. Fix: return {CAT_FIX}.")
    relus = sum(name in RELUS for name, _ in trace.calls)
    require(relus >= 6, f"{call}: the forward pass applies ReLU {relus} time(s) for 6 convs. Fix: "
                        f"nn.ReLU(inplace=True) after each conv, the 1x1 reductions too.")
    return want[1]


@checker('quiz.answer("inception_module", PaperInception)', "a class")
def check_inception_module(module_class, *, size: int = 28, **widths) -> str:
    """Lesson 04: four branches that keep height and width, concatenated along channels."""
    channels = for_each_size(functools.partial(_check_inception_size, module_class),
                             (widths, size), (SMALL, 9))
    return (f"Well done: {widths['in_channels']} -> {channels} channels, {size}x"
            f"{size} kept, {inception_multiplies(size, size, **widths):,} multiplies per image.")
