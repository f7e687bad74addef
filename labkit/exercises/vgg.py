"""Checker for lesson 02 (VGG): the learner's ``vgg_block(num_convs, in_channels, out_channels)``.

The learner hands in the function itself; the checker calls it (with the bank's options and
with a second, small configuration, so a block with hard-coded sizes is caught), then checks
the layers one by one, the output shape and the parameter count.
"""

from __future__ import annotations

from typing import Any

from labkit.quiz.checkers import CheckResult, register_checker

__all__ = ["check_vgg_block", "vgg_block_parameters"]

CONV_FIX = "nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)"
POOL_FIX = "nn.MaxPool2d(kernel_size=2, stride=2)"


def vgg_block_parameters(num_convs: int, in_channels: int, out_channels: int) -> int:
    """Weights and biases of a VGG block: 3x3 kernels, one bias per output channel."""
    first = 9 * in_channels * out_channels + out_channels
    rest = (num_convs - 1) * (9 * out_channels * out_channels + out_channels)
    return first + rest


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _leaves(block) -> list:
    # Nested nn.Sequential containers are fine; what counts is the order of the leaf layers.
    # Walk _modules rather than modules(): modules() lists a reused nn.ReLU() only once.
    children = [m for m in block._modules.values() if m is not None]
    if not children:
        return [block]
    return [leaf for child in children for leaf in _leaves(child)]


def _check_conv(conv, index: int, in_channels: int, out_channels: int) -> str | None:
    where = f"Convolution {index + 1}"
    if _pair(conv.kernel_size) != (3, 3):
        return (f"{where} has kernel_size {_pair(conv.kernel_size)}; VGG uses only 3x3 "
                f"kernels (two 3x3 see as far as one 5x5, with fewer weights). Fix: {CONV_FIX}.")
    # padding="same" is padding 1 for a 3x3 kernel at stride 1: the same layer.
    if conv.padding != "same" and _pair(conv.padding) != (1, 1):
        pad = _pair(conv.padding)[0]
        effect = (f"padding {pad} shrinks the map by 2 pixels per conv" if pad == 0 else
                  f"padding {pad} changes the map's size with each conv")
        return (f"{where} has padding {conv.padding!r}; with a 3x3 kernel, {effect}, but in a "
                f"VGG block only the max-pool changes the size. Fix: {CONV_FIX}.")
    if _pair(conv.stride) != (1, 1):
        return (f"{where} has stride {_pair(conv.stride)}, which shrinks the map inside the "
                f"block; VGG leaves downsampling to the max-pool at the end. Fix: stride=1 "
                f"(the default).")
    if _pair(conv.dilation) != (1, 1) or conv.groups != 1:
        return (f"{where} uses dilation {conv.dilation} and groups {conv.groups}; a VGG "
                f"conv is a plain one. Fix: leave dilation and groups at their defaults.")
    if conv.in_channels != in_channels or conv.out_channels != out_channels:
        return (f"{where} maps {conv.in_channels} -> {conv.out_channels} channels, expected "
                f"{in_channels} -> {out_channels}. Fix: the first conv takes in_channels, "
                f"every later one takes out_channels; all produce out_channels.")
    if conv.bias is None:
        return (f"{where} has no bias (bias=False); VGG16's convolutions have one per "
                f"output channel. Fix: keep bias=True, the default.")
    return None


def _check_layers(block, num_convs: int, in_channels: int, out_channels: int) -> str | None:
    from torch import nn

    leaves = _leaves(block)
    names = ", ".join(type(m).__name__ for m in leaves) or "no layers"
    convs = [m for m in leaves if isinstance(m, nn.Conv2d)]
    pools = [m for m in leaves if isinstance(m, nn.MaxPool2d)]
    if len(convs) != num_convs:
        return (f"The block has {len(convs)} convolution(s) ({names}) but num_convs is "
                f"{num_convs}. Fix: add one {CONV_FIX} (then a ReLU) per iteration of "
                f"`for _ in range(num_convs)`.")
    if not pools:
        other = [type(m).__name__ for m in leaves if "Pool" in type(m).__name__]
        what = f"pools with {other[0]}, not a max-pool" if other else "has no max-pool"
        return (f"The block {what} ({names}); a VGG block halves the height and "
                f"width with a 2x2 max-pool. Fix: append {POOL_FIX} after the loop.")
    if len(pools) > 1 or leaves[-1] is not pools[0]:
        return (f"The block has {len(pools)} max-pool(s) and its last layer is "
                f"{type(leaves[-1]).__name__} ({names}); a VGG block has exactly one max-pool, "
                f"at the end. Fix: append {POOL_FIX} once, after the loop, not inside it.")
    pool = pools[0]
    if _pair(pool.kernel_size) != (2, 2) or _pair(pool.stride or pool.kernel_size) != (2, 2):
        return (f"The max-pool has kernel_size {pool.kernel_size} and stride {pool.stride}; "
                f"a 2x2 window with stride 2 halves height and width. Fix: {POOL_FIX}.")
    expected = [nn.Conv2d, nn.ReLU] * num_convs + [nn.MaxPool2d]
    vgg_layers = (nn.Conv2d, nn.ReLU, nn.MaxPool2d)
    for index, (layer, kind) in enumerate(zip(leaves, expected)):
        if isinstance(layer, kind):
            continue
        if not isinstance(layer, vgg_layers):
            return (f"Layer {index + 1} is {type(layer).__name__}; plain VGG16 has only "
                    f"conv, ReLU, conv, ReLU, ..., max-pool ({names}). Fix: remove it "
                    f"(BatchNorm belongs to vgg16_bn, dropout to the classifier).")
        if kind is nn.ReLU:
            return (f"Layer {index + 1} is {type(layer).__name__}, where a ReLU must follow "
                    f"the convolution before it ({names}). Without a ReLU after every conv, "
                    f"stacked convs collapse into one linear map. Fix: add "
                    f"nn.ReLU(inplace=True) after each nn.Conv2d.")
        return (f"Layer {index + 1} is {type(layer).__name__} where a {kind.__name__} belongs "
                f"({names}). Fix: in each step of the loop, the conv first, then its ReLU.")
    if len(leaves) != len(expected):
        return (f"The block has {len(leaves)} layers ({names}), expected {len(expected)}. "
                f"Fix: conv and ReLU num_convs times, then one max-pool, nothing else.")
    for index, conv in enumerate(convs):
        problem = _check_conv(conv, index, in_channels if index == 0 else out_channels,
                              out_channels)
        if problem:
            return problem
    return None


def _check_one(vgg_block, num_convs: int, in_channels: int, out_channels: int,
               size: int = 16) -> str | None:
    import torch
    from torch import nn

    call = f"vgg_block({num_convs}, {in_channels}, {out_channels})"
    try:
        block = vgg_block(num_convs, in_channels, out_channels)
    except Exception as error:  # the learner's code failed: report it, do not crash
        return (f"Calling {call} raised {type(error).__name__}: {error}. Fix: make the "
                f"function take (num_convs, in_channels, out_channels) and return the block.")
    if not isinstance(block, nn.Module):
        return (f"{call} returned a {type(block).__name__}, not a module. Fix: return "
                f"nn.Sequential(*layers), not the list of layers.")
    problem = _check_layers(block, num_convs, in_channels, out_channels)
    if problem:
        return f"{call}: {problem}"
    x = torch.randn(2, in_channels, size, size)  # (B, C_in, H, W)
    try:
        with torch.no_grad():
            y = block(x)
    except Exception as error:
        return (f"{call} failed on an input of shape {tuple(x.shape)}: "
                f"{type(error).__name__}: {error}. Fix: check the channel counts of each conv.")
    want = (2, out_channels, size // 2, size // 2)
    if tuple(y.shape) != want:
        return (f"{call} turns an input of shape {tuple(x.shape)} into {tuple(y.shape)}, "
                f"expected {want}: channels = out_channels, height and width halved. Fix: "
                f"padding=1 in every conv and one {POOL_FIX} at the end.")
    params = sum(p.numel() for p in block.parameters())
    expected = vgg_block_parameters(num_convs, in_channels, out_channels)
    if params != expected:
        return (f"{call} has {params:,} parameters, expected {expected:,} "
                f"(9·C_in·C_out + C_out per conv). Fix: 3x3 convs with bias, nothing that "
                f"carries weights besides them.")
    return None


@register_checker("vgg_block")
def check_vgg_block(vgg_block: Any, *, num_convs: int = 3, in_channels: int = 128,
                    out_channels: int = 256) -> CheckResult:
    """``vgg_block`` must build conv3x3(padding 1) + ReLU, ``num_convs`` times, then a 2x2
    max-pool, for the bank's sizes and for any other sizes."""
    from torch import nn

    if isinstance(vgg_block, nn.Module) or not callable(vgg_block):
        return CheckResult(False, f"Expected the function vgg_block itself, got a "
                                  f"{type(vgg_block).__name__}. Fix: "
                                  f"quiz.answer(\"build_block\", vgg_block), without calling it.")
    configurations = [(num_convs, in_channels, out_channels), (2, 3, 8)]
    for config in configurations:
        problem = _check_one(vgg_block, *config)
        if problem:
            if config != configurations[0]:
                problem += (" (It passed for the quiz's sizes, so check that the function "
                            "uses its arguments rather than fixed numbers.)")
            return CheckResult(False, problem)
    expected = vgg_block_parameters(num_convs, in_channels, out_channels)
    return CheckResult(True, f"Well done: vgg_block({num_convs}, {in_channels}, {out_channels}) "
                             f"has the VGG layout, halves height and width, outputs "
                             f"{out_channels} channels and holds {expected:,} parameters.")
