"""Checker for lesson 04 (Inception): the learner's inception module class.

The learner hands in the class; the checker builds it with the bank's branch widths (and with
a second, small set of widths, so a class with hard-coded sizes is caught) and runs one forward
pass while recording every convolution, pooling, ReLU, concatenation and addition it calls (a
``TorchFunctionMode``, so layers written with ``torch.nn.functional`` are seen too). From that
record it says which branch is wrong and how to fix it.

Two conventions are accepted: the 2014 paper's (every conv has a bias and is followed by a
ReLU) and torchvision's (bias-free convs, each followed by BatchNorm and a ReLU).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from labkit.quiz.checkers import CheckResult, register_checker

__all__ = ["check_inception_module", "inception_convs", "inception_parameters",
           "inception_multiplies"]

WIDTHS = ("in_channels", "ch1x1", "ch3x3red", "ch3x3", "ch5x5red", "ch5x5", "pool_proj")
POOL_FIX = "nn.MaxPool2d(kernel_size=3, stride=1, padding=1)"
CAT_FIX = "torch.cat([branch1, branch2, branch3, branch4], dim=1)"
# A second configuration with all-different widths, so that adding branches cannot work by luck.
SMALL = {"in_channels": 12, "ch1x1": 4, "ch3x3red": 6, "ch3x3": 8, "ch5x5red": 3, "ch5x5": 5,
         "pool_proj": 7}


def inception_convs(in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int,
                    ch5x5: int, pool_proj: int, *, big_kernel: int = 5) -> list[tuple]:
    """(c_in, c_out, k) of the six convolutions of an inception module, branch by branch."""
    return [(in_channels, ch1x1, 1),                               # 1x1 branch
            (in_channels, ch3x3red, 1), (ch3x3red, ch3x3, 3),      # 1x1 reduction, then 3x3
            (in_channels, ch5x5red, 1), (ch5x5red, ch5x5, big_kernel),  # reduction, then 5x5
            (in_channels, pool_proj, 1)]                           # after the 3x3 max-pool


def inception_parameters(*, batchnorm: bool = False, big_kernel: int = 5, **widths) -> int:
    """Parameters of the module: k²·c_in·c_out weights per conv, plus per output channel one
    bias (paper) or a BatchNorm weight and bias (``batchnorm=True``, convs without bias)."""
    per_channel = 2 if batchnorm else 1
    return sum(k * k * c_in * c_out + per_channel * c_out
               for c_in, c_out, k in inception_convs(**widths, big_kernel=big_kernel))


def inception_multiplies(height: int, width: int, *, big_kernel: int = 5, **widths) -> int:
    """Multiplications of the module's convs for one image: every output value of a conv
    takes c_in·k² of them (padding keeps height x width in every branch)."""
    return sum(height * width * c_out * c_in * k * k
               for c_in, c_out, k in inception_convs(**widths, big_kernel=big_kernel))


@dataclass
class _Call:
    name: str
    input_shape: tuple
    output_shape: tuple
    weight_shape: tuple = ()
    stride: Any = 1
    dim: int = 0


POOLS = {"max_pool2d", "avg_pool2d", "max_pool2d_with_indices", "lp_pool2d"}
JOINS = {"cat", "concat", "concatenate", "stack"}
ADDS = {"add", "add_", "__add__", "__radd__", "__iadd__", "sum"}
RELUS = {"relu", "relu_"}


def _tracer():
    """A TorchFunctionMode that records the calls the checker reasons about."""
    from torch import Tensor
    from torch.overrides import TorchFunctionMode

    class Trace(TorchFunctionMode):
        def __init__(self):
            super().__init__()
            self.calls: list[_Call] = []

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            result = None
            try:
                result = func(*args, **kwargs)
                return result
            finally:  # a call that raised is recorded too, with no output shape
                self._record(getattr(func, "__name__", ""), args, kwargs, result)

        def _record(self, name, args, kwargs, result):
            first = args[0] if args else None
            shape = tuple(first.shape) if isinstance(first, Tensor) else ()
            out = tuple(result.shape) if isinstance(result, Tensor) else ()
            if name == "conv2d":
                weight = args[1] if len(args) > 1 else kwargs.get("weight")
                if not isinstance(weight, Tensor):
                    return
                groups = args[6] if len(args) > 6 else kwargs.get("groups", 1)
                stride = args[3] if len(args) > 3 else kwargs.get("stride", 1)
                c_out, c_in, kh, kw = weight.shape
                self.calls.append(_Call(name, shape, out, (c_out, c_in * groups, kh, kw),
                                        stride=stride))
            elif name in POOLS | RELUS | ADDS:
                self.calls.append(_Call(name, shape, out))
            elif name in JOINS:
                dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
                self.calls.append(_Call(name, shape, out, dim=dim))

    return Trace()


def _size(shape: tuple) -> str:
    return "x".join(str(s) for s in shape[-2:])


def _spatial_problem(calls: list[_Call]) -> str | None:
    """The first conv or pooling layer that changes the height and width."""
    for call in calls:
        if call.name not in POOLS | {"conv2d"} or not call.output_shape:
            continue
        if call.input_shape[-2:] == call.output_shape[-2:]:
            continue
        change = f"turns the {_size(call.input_shape)} map into {_size(call.output_shape)}"
        if call.name != "conv2d":
            hint = ("its stride defaults to the kernel size, so it downsamples"
                    if call.output_shape[-1] * 2 <= call.input_shape[-1]
                    else "without padding=1 a 3x3 window trims a pixel on each side")
            return (f"The pooling in the fourth branch {change}: {hint}. Every branch must keep "
                    f"the height and width, or the outputs cannot be concatenated. "
                    f"Fix: {POOL_FIX}.")
        c_out, c_in, kh, kw = call.weight_shape
        if call.stride not in (1, (1, 1), [1, 1]):
            return (f"The {kh}x{kw} convolution ({c_in} -> {c_out} channels) has stride "
                    f"{call.stride} and {change}; every branch must keep the size. "
                    f"Fix: stride=1 (the default).")
        return (f"The {kh}x{kw} convolution ({c_in} -> {c_out} channels) {change}: without "
                f"padding a {kh}x{kw} kernel trims {kh - 1} pixels, so the branches no longer "
                f"have the same size. Fix: padding={kh // 2} (kernel_size // 2).")
    return None


def _conv_problem(calls: list[_Call], widths: dict) -> str | None:
    expected = Counter((c_out, c_in, k, k) for c_in, c_out, k in inception_convs(**widths))
    found = Counter(call.weight_shape for call in calls if call.name == "conv2d")
    if found == expected:
        return None
    missing, extra = expected - found, found - expected
    c_in = widths["in_channels"]

    def show(shape):
        return f"{shape[2]}x{shape[3]} conv {shape[1]} -> {shape[0]} channels"
    for c_out, red, kh, kw in missing:
        if kh > 1 and (c_out, c_in, kh, kw) in extra:
            factor = kh * kw * c_in * c_out / (c_in * red + kh * kw * red * c_out)
            return (f"The {kh}x{kw} conv to {c_out} channels reads all {c_in} input channels: "
                    f"the 1x1 reduction to {red} channels before it is missing, so the branch "
                    f"has {factor:.1f} times the weights it needs, and as many times the "
                    f"multiplies. Fix: nn.Conv2d(in_channels, {red}, kernel_size=1) and a ReLU "
                    f"first, then the {kh}x{kw} conv from {red} channels.")
        if kh == 5 and (c_out, red, 3, 3) in extra:
            return (f"The branch after the {red}-channel reduction uses a 3x3 kernel. The "
                    f"paper's branch is 5x5 (torchvision's GoogLeNet has 3x3 there, a known "
                    f"bug it keeps for its weights). Fix: kernel_size=5, padding=2.")
    if (widths["pool_proj"], c_in, 1, 1) in missing:
        return (f"No 1x1 conv projects the pooled map from {c_in} to {widths['pool_proj']} "
                f"channels, so the pooling branch alone would pass all {c_in} channels on. "
                f"Fix: after {POOL_FIX}, nn.Conv2d(in_channels, pool_proj, kernel_size=1).")
    want = "; ".join(show(s) for s in expected.elements())
    got = "; ".join(show(s) for s in found.elements()) or "none"
    return (f"The convolutions are not those of an inception module. Expected {want}. "
            f"Found {got}. Fix: build the four branches with exactly these convolutions.")


def _call_text(widths: dict) -> str:
    return ", ".join(f"{name}={widths[name]}" for name in WIDTHS)


def _check_one(module_class, widths: dict, size: int) -> str | None:
    import torch
    from torch import Tensor, nn

    call = f"{getattr(module_class, '__name__', 'your class')}({_call_text(widths)})"
    try:
        module = module_class(**widths)
    except Exception as error:  # the learner's code failed: report it, do not crash
        return (f"Calling {call} raised {type(error).__name__}: {error}. Fix: the constructor "
                f"takes the keyword arguments {', '.join(WIDTHS)}.")
    if not isinstance(module, nn.Module):
        return (f"{call} returned a {type(module).__name__} object, not a module. Fix: subclass "
                f"nn.Module and call super().__init__() first.")
    total = sum(widths[name] for name in ("ch1x1", "ch3x3", "ch5x5", "pool_proj"))
    x = torch.randn(2, widths["in_channels"], size, size)  # (B, C_in, H, W)
    want = (2, total, size, size)
    trace, error, y = _tracer(), None, None
    module.eval()  # our own instance; BatchNorm then uses its running statistics
    try:
        with torch.no_grad(), trace:
            y = module(x)
    except Exception as exc:
        error = exc
    calls = trace.calls
    names = {c.name for c in calls}
    problem = _spatial_problem(calls)
    if problem:
        return f"{call}: {problem}"
    widths_text = (f"{widths['ch1x1']}, {widths['ch3x3']}, {widths['ch5x5']} and "
                   f"{widths['pool_proj']} channels")
    adds_not_cat = names & ADDS and not names & JOINS
    joins = [c for c in calls if c.name in JOINS]
    if error is not None:
        if joins and joins[-1].dim not in (1, -3):
            return (f"{call}: the branch outputs are joined along dim {joins[-1].dim}, where "
                    f"their sizes differ ({type(error).__name__}: {error}). Channels are dim 1 "
                    f"of (B, C, H, W). Fix: {CAT_FIX}.")
        if adds_not_cat:
            return (f"{call}: the forward pass adds the branch outputs, which have "
                    f"{widths_text}, so it fails ({type(error).__name__}: {error}). An "
                    f"inception module stacks them side by side instead. Fix: {CAT_FIX}.")
        return (f"{call} failed on an input of shape {tuple(x.shape)}: "
                f"{type(error).__name__}: {error}. Fix: check the channel counts of each conv "
                f"and that every branch reads the module's input x.")
    if not names & POOLS:
        return (f"{call}: no pooling ran in the forward pass, so the fourth branch is missing. "
                f"Fix: branch 4 is {POOL_FIX}, then a 1x1 conv from in_channels to pool_proj.")
    pools = [c for c in calls if c.name in POOLS]
    if pools[0].input_shape[1] != widths["in_channels"]:
        return (f"{call}: the pooling runs on a {pools[0].input_shape[1]}-channel map; in an "
                f"inception module it pools the input itself ({widths['in_channels']} "
                f"channels), and the 1x1 conv after it projects to pool_proj. Fix: "
                f"nn.Sequential({POOL_FIX}, nn.Conv2d(in_channels, pool_proj, 1), nn.ReLU()).")
    if not isinstance(y, Tensor):
        return (f"{call} returned a {type(y).__name__} object, not one tensor. "
                f"Fix: return {CAT_FIX}.")
    if tuple(y.shape) != want:
        if adds_not_cat:
            return (f"{call}: the output has shape {tuple(y.shape)}, expected {want}: the "
                    f"branch outputs are added, not concatenated. Fix: {CAT_FIX}.")
        if joins and joins[-1].dim not in (1, -3):
            return (f"{call}: the branch outputs are joined along dim {joins[-1].dim}, so the "
                    f"output has shape {tuple(y.shape)} instead of {want}. Channels are dim 1 "
                    f"of (B, C, H, W). Fix: {CAT_FIX}.")
    problem = _conv_problem(calls, widths)
    if problem:
        return f"{call}: {problem}"
    if tuple(y.shape) != want:
        return (f"{call} turns an input of shape {tuple(x.shape)} into {tuple(y.shape)}, "
                f"expected {want}: the output channels are ch1x1 + ch3x3 + ch5x5 + pool_proj "
                f"= {total}. Fix: return {CAT_FIX} of the four branches and nothing else.")
    relus = sum(c.name in RELUS for c in calls)
    if relus < 6:
        return (f"{call}: the forward pass applies ReLU {relus} time(s) for 6 convolutions; "
                f"in an inception module every conv, the 1x1 reductions too, is followed by "
                f"one. Fix: nn.ReLU(inplace=True) after each conv (after its BatchNorm, if any).")
    return _parameter_problem(module, widths, call)


def _parameter_problem(module, widths: dict, call: str) -> str | None:
    from torch import nn

    params = sum(p.numel() for p in module.parameters())
    paper = inception_parameters(**widths)
    with_bn = inception_parameters(**widths, batchnorm=True)
    if params in (paper, with_bn):
        return None
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    biases = sum(c_out for _, c_out, _ in inception_convs(**widths))
    if norms and params == with_bn + biases:
        return (f"{call} has {params:,} parameters, {biases} more than expected: the convs "
                f"that BatchNorm follows still have a bias, which BatchNorm's shift makes "
                f"useless. Fix: nn.Conv2d(..., bias=False) before each nn.BatchNorm2d.")
    if not norms and params == paper - biases:
        return (f"{call} has {params:,} parameters, {biases} fewer than expected: the convs "
                f"have no bias and no BatchNorm follows them. Fix: keep bias=True (the "
                f"default), or add nn.BatchNorm2d after each bias-free conv.")
    return (f"{call} has {params:,} parameters, expected {paper:,} (convs with bias, the "
            f"paper's way) or {with_bn:,} (bias-free convs each followed by BatchNorm). Fix: "
            f"the six convolutions and, if you use it, one BatchNorm2d per conv; nothing else "
            f"that carries weights.")


@register_checker("inception_module")
def check_inception_module(module_class: Any, *, in_channels: int = 192, ch1x1: int = 64,
                           ch3x3red: int = 96, ch3x3: int = 128, ch5x5red: int = 16,
                           ch5x5: int = 32, pool_proj: int = 32, size: int = 28) -> CheckResult:
    """The class must build the four branches (1x1; 1x1 then 3x3; 1x1 then 5x5; 3x3 max-pool
    then 1x1), keep height and width, and concatenate the branches along channels."""
    from torch import nn

    if isinstance(module_class, nn.Module) or not callable(module_class):
        return CheckResult(False, f"Expected the class itself, got an object of type "
                                  f"{type(module_class).__name__}. Fix: "
                                  f"quiz.answer(\"inception_module\", PaperInception), the "
                                  f"class name without calling it.")
    widths = {"in_channels": in_channels, "ch1x1": ch1x1, "ch3x3red": ch3x3red,
              "ch3x3": ch3x3, "ch5x5red": ch5x5red, "ch5x5": ch5x5, "pool_proj": pool_proj}
    for config, pixels in ((widths, size), (SMALL, 9)):
        problem = _check_one(module_class, config, pixels)  # grading keeps the random stream
        if problem:
            if config is SMALL:
                problem += (" (It passed for the quiz's widths, so check that the class uses "
                            "its arguments rather than fixed numbers.)")
            return CheckResult(False, problem)
    total = ch1x1 + ch3x3 + ch5x5 + pool_proj
    return CheckResult(True, f"Well done: four branches, {in_channels} -> {total} channels "
                             f"concatenated, {size}x{size} kept, and "
                             f"{inception_multiplies(size, size, **widths):,} multiplies per "
                             f"image in its convolutions.")
