"""Checker for lesson 02 (VGG): the learner's ``vgg_block(num_convs, in_channels, out_channels)``,
called with the bank's sizes and small ones: its layers, output shape and parameter count."""

import torch
from torch import nn

from labkit.exercises.checks import (build, checker, expect_callable, for_each_size, forward,
                                     require)
from labkit.vision import count_parameters

CONV_FIX = "nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)"
POOL_FIX = "nn.MaxPool2d(kernel_size=2, stride=2)"


def vgg_block_parameters(num_convs: int, in_channels: int, out_channels: int) -> int:
    """Weights and biases of a VGG block: 3x3 kernels, one bias per output channel."""
    inputs = [in_channels] + [out_channels] * (num_convs - 1)
    return sum(9 * c_in * out_channels + out_channels for c_in in inputs)


def _pair(value) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _leaves(module) -> list:
    # _modules rather than modules(): modules() lists a reused nn.ReLU() only once.
    children = [m for m in module._modules.values() if m is not None]
    return [leaf for child in children for leaf in _leaves(child)] if children else [module]


def _check_layers(block, num_convs: int, in_channels: int, out_channels: int) -> None:
    leaves = _leaves(block)
    names = ", ".join(type(m).__name__ for m in leaves)
    pools = [m for m in leaves if isinstance(m, nn.MaxPool2d)]
    require(pools, f"The block has no max-pool ({names}); a VGG block halves height and width "
                   f"with a 2x2 max-pool. Fix: append {POOL_FIX} after the loop.")
    require(len(pools) == 1 and leaves[-1] is pools[0], f"The block has {len(pools)} max-pools "
            f"({names}); a VGG block has exactly one max-pool, at the end. Fix: append "
            f"{POOL_FIX} once, after the loop.")
    require(_pair(pools[0].kernel_size) == _pair(pools[0].stride) == (2, 2), f"The max-pool has "
            f"kernel_size {pools[0].kernel_size} and stride {pools[0].stride}. Fix: {POOL_FIX}.")
    expected = [nn.Conv2d, nn.ReLU] * num_convs + [nn.MaxPool2d]  # with one pool, at the end
    for index, (layer, kind) in enumerate(zip(leaves, expected), 1):
        require(isinstance(layer, (nn.Conv2d, nn.ReLU, nn.MaxPool2d)), f"Layer {index} is "
                f"{type(layer).__name__}; VGG16 has only conv, ReLU, ..., max-pool ({names}). "
                f"Fix: remove it (BatchNorm belongs to vgg16_bn).")
        require(isinstance(layer, kind), f"Layer {index} is {type(layer).__name__} where a "
                f"{kind.__name__} belongs ({names}): num_convs={num_convs} times a conv and a "
                f"ReLU (without it stacked convs collapse into one linear map), then the "
                f"max-pool. Fix: each conv, then nn.ReLU(inplace=True).")
    for index, conv in enumerate(leaves[0:-1:2]):
        where, c_in = f"Convolution {index + 1}", in_channels if index == 0 else out_channels
        require(_pair(conv.kernel_size) == (3, 3), f"{where} has kernel_size {conv.kernel_size};"
                f" VGG uses only 3x3 kernels (two see as far as one 5x5, with fewer weights). "
                f"Fix: {CONV_FIX}.")
        pad = 1 if conv.padding == "same" else _pair(conv.padding)[0]  # "same" is 1 for 3x3
        require(pad == 1, f"{where} has padding {pad}, which shrinks or grows the map; in a VGG "
                          f"block only the max-pool changes its size. Fix: {CONV_FIX}.")
        require(_pair(conv.stride) == (1, 1), f"{where} has stride {conv.stride}; VGG leaves "
                f"downsampling to the max-pool. Fix: stride=1 (the default).")
        require((conv.in_channels, conv.out_channels) == (c_in, out_channels), f"{where} maps "
                f"{conv.in_channels} -> {conv.out_channels} channels, expected {c_in} -> "
                f"{out_channels}. Fix: the first conv takes in_channels, every later one takes "
                f"out_channels.")
        require(conv.bias is not None, f"{where} has no bias; VGG16's convolutions have one. "
                                       f"Fix: keep bias=True, the default.")


def _check_one(vgg_block, num_convs: int, in_channels: int, out_channels: int) -> None:
    call = f"vgg_block({num_convs}, {in_channels}, {out_channels})"
    block = build(call, "make vgg_block(num_convs, in_channels, out_channels) return "
                        "nn.Sequential(*layers).", vgg_block, num_convs, in_channels, out_channels)
    _check_layers(block, num_convs, in_channels, out_channels)
    y = forward(call, "check each conv's channels.", block, torch.randn(2, in_channels, 16, 16))
    params = count_parameters(block)
    expected = vgg_block_parameters(num_convs, in_channels, out_channels)
    require(tuple(y.shape) == (2, out_channels, 8, 8) and params == expected, f"{call} turns a "
            f"(2, {in_channels}, 16, 16) input into {tuple(y.shape)}, expected (2, {out_channels}, "
            f"8, 8), with {params:,} parameters, expected {expected:,}. Fix: only 3x3 convs "
            f"(padding=1, with bias), ReLUs and one {POOL_FIX} at the end.")


@checker
def check_vgg_block(vgg_block, *, num_convs: int = 3, in_channels: int = 128,
                    out_channels: int = 256) -> str:
    """``vgg_block`` builds conv3x3 (padding 1) and ReLU ``num_convs`` times, then a 2x2
    max-pool, for the bank's sizes and for others."""
    expect_callable(vgg_block, 'quiz.answer("build_block", vgg_block)', "the function vgg_block")
    for_each_size(lambda size: _check_one(vgg_block, *size),
                  [(num_convs, in_channels, out_channels), (2, 3, 8)])
    return (f"Well done: vgg_block({num_convs}, {in_channels}, {out_channels}) has the VGG "
            f"layout, halves height and width, outputs {out_channels} channels and holds "
            f"{vgg_block_parameters(num_convs, in_channels, out_channels):,} parameters.")
