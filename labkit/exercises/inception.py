"""Checker for lesson 04 (Inception): the learner's inception module class, built with the
bank's widths and with small ones. A ``TorchFunctionMode`` records the convs, poolings, ReLUs,
joins and additions of one forward pass, ``torch.nn.functional`` calls too, to name the wrong
branch. The paper's convs (bias, ReLU) and torchvision's (no bias, BatchNorm, ReLU) both pass."""

from collections import Counter, namedtuple

import torch
from torch.overrides import TorchFunctionMode

from labkit.exercises.checks import (Mistake, build, checker, expect_callable, for_each_size,
                                     require)

WIDTHS = ("in_channels", "ch1x1", "ch3x3red", "ch3x3", "ch5x5red", "ch5x5", "pool_proj")
SMALL = dict(zip(WIDTHS, (12, 4, 6, 8, 3, 5, 7)))  # all different: no sum of branches fits
POOL_FIX = "nn.MaxPool2d(kernel_size=3, stride=1, padding=1)"
CAT_FIX = "torch.cat([branch1, branch2, branch3, branch4], dim=1)"
POOLS = {"max_pool2d", "avg_pool2d", "max_pool2d_with_indices", "lp_pool2d"}
JOINS = {"cat", "concat", "concatenate", "stack"}
ADDS = {"add", "add_", "__add__", "__radd__", "__iadd__", "sum"}
RELUS = {"relu", "relu_"}
# detail: a conv's (c_out, c_in, kh, kw, stride), a join's dim; output_shape is () if it raised
_Call = namedtuple("_Call", "name input_shape output_shape detail")


def inception_convs(in_channels: int, ch1x1: int, ch3x3red: int, ch3x3: int, ch5x5red: int,
                    ch5x5: int, pool_proj: int, *, big_kernel: int = 5) -> list[tuple]:
    """(c_in, c_out, k) of the module's six convolutions, branch by branch."""
    return [(in_channels, ch1x1, 1), (in_channels, ch3x3red, 1), (ch3x3red, ch3x3, 3),
            (in_channels, ch5x5red, 1), (ch5x5red, ch5x5, big_kernel), (in_channels, pool_proj, 1)]


def inception_parameters(*, batchnorm: bool = False, big_kernel: int = 5, **widths) -> int:
    """k²·c_in·c_out weights per conv, plus per output channel a bias (the paper's convs) or a
    BatchNorm weight and bias (``batchnorm=True``, bias-free convs)."""
    return sum(k * k * c_in * c_out + (2 if batchnorm else 1) * c_out
               for c_in, c_out, k in inception_convs(**widths, big_kernel=big_kernel))


def inception_multiplies(height: int, width: int, *, big_kernel: int = 5, **widths) -> int:
    """Multiplications of the module's convs for one image (padding keeps height x width)."""
    return sum(height * width * c_out * c_in * k * k
               for c_in, c_out, k in inception_convs(**widths, big_kernel=big_kernel))


class _Trace(TorchFunctionMode):
    """Records, in ``self.calls``, the calls the checker reasons about."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs, name, result = kwargs or {}, getattr(func, "__name__", ""), None

        def arg(index, key, default=None):
            return args[index] if len(args) > index else kwargs.get(key, default)
        try:
            result = func(*args, **kwargs)
            return result
        finally:  # a call that raised is recorded too
            if name in POOLS | JOINS | ADDS | RELUS | {"conv2d"}:
                detail = arg(1, "dim", 0)
                if name == "conv2d":  # its weight is (c_out, c_in / groups, kh, kw)
                    c_out, c_in, kh, kw = arg(1, "weight").shape
                    detail = (c_out, c_in * arg(6, "groups", 1), kh, kw, arg(3, "stride", 1))
                shapes = (tuple(t.shape) if isinstance(t, torch.Tensor) else ()
                          for t in (arg(0, "input"), result))
                self.calls.append(_Call(name, *shapes, detail))


def _check_sizes(calls: list) -> None:
    """The first conv or pooling that changes the height and width is the mistake."""
    for call in calls:
        if (call.name not in POOLS | {"conv2d"} or not call.output_shape
                or call.input_shape[-2:] == call.output_shape[-2:]):
            continue
        change = "turns the {}x{} map into {}x{}".format(*call.input_shape[-2:],
                                                         *call.output_shape[-2:])
        what, fix = "pooling in the fourth branch", POOL_FIX + (
            ": its stride defaults to the kernel size" if call.output_shape[-1] * 2
            <= call.input_shape[-1] else ": without padding=1 a 3x3 window trims the edges")
        if call.name == "conv2d":
            c_out, c_in, kh, kw, stride = call.detail
            what = f"{kh}x{kw} convolution ({c_in} -> {c_out} channels)"
            fix = ("stride=1 (the default)" if stride not in (1, (1, 1), [1, 1])
                   else f"padding={kh // 2} (kernel_size // 2)")
        raise Mistake(f"The {what} {change}, so the branches no longer have the same size and "
                      f"cannot be concatenated. Fix: {fix}.")


def _check_convs(calls: list, widths: dict, call: str) -> None:
    expected = Counter((c_out, c_in, k, k) for c_in, c_out, k in inception_convs(**widths))
    found = Counter(c.detail[:4] for c in calls if c.name == "conv2d")
    missing, extra, c_in = expected - found, found - expected, widths["in_channels"]
    for c_out, red, kh, kw in missing:
        factor = kh * kw * c_in * c_out / (c_in * red + kh * kw * red * c_out)
        require(kh == 1 or (c_out, c_in, kh, kw) not in extra, f"{call}: the {kh}x{kw} conv to "
                f"{c_out} channels reads all {c_in} input channels, without the 1x1 reduction to "
                f"{red} channels before it: {factor:.1f} times the weights and multiplies. Fix: "
                f"nn.Conv2d(in_channels, {red}, kernel_size=1) and a ReLU first.")
        require(kh != 5 or (c_out, red, 3, 3) not in extra, f"{call}: the branch after the "
                f"{red}-channel reduction uses a 3x3 kernel where the paper's has 5x5 "
                f"(torchvision's GoogLeNet keeps that known bug for its weights). Fix: "
                f"kernel_size=5, padding=2.")
    require(not missing and not extra, f"{call}: its convolutions (c_out, c_in, kh, kw) are "
            f"{list(found.elements())}, expected {list(expected.elements())}. Fix: build the four "
            f"branches with exactly these convolutions.")


def _check_one(module_class, widths: dict, size: int) -> None:
    call = (f"{getattr(module_class, '__name__', 'your class')}"
            f"({', '.join(f'{name}={widths[name]}' for name in WIDTHS)})")
    module = build(call, f"subclass nn.Module, call super().__init__() first, and take the "
                         f"keyword arguments {', '.join(WIDTHS)}.", module_class, **widths)
    x, trace = torch.randn(2, widths["in_channels"], size, size), _Trace()
    try:
        with torch.no_grad(), trace:
            y = module.eval()(x)  # eval: BatchNorm uses its running statistics
    except Exception as error:  # noqa: BLE001  (the learner's code: the trace says what failed)
        _check_sizes(trace.calls)
        failure = f"({type(error).__name__}: {error})"
        joins = [c.detail for c in trace.calls if c.name in JOINS]
        require(not joins or joins[-1] in (1, -3), f"{call}: the branch outputs are joined along "
                f"dim {joins[-1] if joins else ''} {failure}; channels are dim 1 of (B, C, H, W). "
                f"Fix: {CAT_FIX}.")
        require(joins or not {c.name for c in trace.calls} & ADDS, f"{call}: the forward pass "
                f"adds the branch outputs, whose channel counts differ {failure}; an inception "
                f"module stacks them side by side. Fix: {CAT_FIX}.")
        raise Mistake(f"{call} failed on an input of shape {tuple(x.shape)} {failure}. Fix: check "
                      f"each conv's channels, and that each branch reads the input x.") from None
    _check_sizes(trace.calls)
    pools = [c.input_shape[1:2] for c in trace.calls if c.name in POOLS]
    require(pools, f"{call}: no pooling ran in the forward pass, so the fourth branch is missing. "
                   f"Fix: branch 4 is {POOL_FIX}, then a 1x1 conv from in_channels to pool_proj.")
    require(pools[0] == (widths["in_channels"],), f"{call}: the pooling runs on a {pools[0]}-"
            f"channel map, not on the module's input. Fix: the fourth branch is {POOL_FIX}, then "
            f"nn.Conv2d(in_channels, pool_proj, 1).")
    _check_convs(trace.calls, widths, call)
    want = (2, sum(widths[name] for name in ("ch1x1", "ch3x3", "ch5x5", "pool_proj")), size, size)
    require(getattr(y, "shape", None) == want, f"{call} returns {getattr(y, 'shape', type(y))}, "
            f"expected {want}: ch1x1 + ch3x3 + ch5x5 + pool_proj channels. Fix: return {CAT_FIX}.")
    relus = sum(c.name in RELUS for c in trace.calls)
    require(relus >= 6, f"{call}: the forward pass applies ReLU {relus} time(s) for 6 convs. Fix: "
                        f"nn.ReLU(inplace=True) after each conv, the 1x1 reductions too.")


@checker
def check_inception_module(module_class, *, in_channels: int = 192, ch1x1: int = 64,
                           ch3x3red: int = 96, ch3x3: int = 128, ch5x5red: int = 16,
                           ch5x5: int = 32, pool_proj: int = 32, size: int = 28) -> str:
    """Four branches (1x1; 1x1 then 3x3; 1x1 then 5x5; 3x3 max-pool then 1x1) that keep height
    and width, concatenated along the channels."""
    expect_callable(module_class, 'quiz.answer("inception_module", PaperInception)', "a class")
    widths = dict(zip(WIDTHS, (in_channels, ch1x1, ch3x3red, ch3x3, ch5x5red, ch5x5, pool_proj)))
    for_each_size(lambda config: _check_one(module_class, *config), [(widths, size), (SMALL, 9)])
    return (f"Well done: four branches, {in_channels} -> {ch1x1 + ch3x3 + ch5x5 + pool_proj} "
            f"channels concatenated, {size}x{size} kept, and "
            f"{inception_multiplies(size, size, **widths):,} multiplies per image in its convs.")
