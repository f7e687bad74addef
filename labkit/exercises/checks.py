"""What the checkers share: a wrong answer raises ``Mistake``; the learner's code runs in
``attempt``."""

import functools

import torch
from torch import nn

from labkit.quiz.checkers import CheckResult


class Mistake(Exception):
    """A wrong answer; the message is the learner's feedback: the mistake, then "Fix: ..."."""


def checker(hand_in: str | None = None, what: str = "a function"):
    """Decorator: the checker the quiz calls, from ``function(answer, **options)`` that returns
    its praise or raises ``Mistake``. With ``hand_in``, the answer is a function or class."""
    kind = "class" if "class" in what else "function"

    def decorate(function):
        @functools.wraps(function)
        def check(answer, **options) -> CheckResult:
            try:
                require(not hand_in or callable(answer) and not isinstance(answer, nn.Module),
                        f"Expected {what}, got a {type(answer).__name__}. Fix: hand in the "
                        f"{kind} itself, not a result: {hand_in}.")
                return CheckResult(True, function(answer, **options))
            except Mistake as mistake:
                return CheckResult(False, str(mistake))
        return check
    return decorate


def require(condition, message: str) -> None:
    if not condition:
        raise Mistake(message)


def attempt(call: str, fix: str, function, *args, returns: type = object, **kwargs):
    """``function(*args, **kwargs)``, the learner's code: an error it raises, or a result that is
    not a ``returns``, is a Mistake."""
    try:
        result = function(*args, **kwargs)
    except Exception as error:  # noqa: BLE001  (any error in the learner's code)
        raise Mistake(f"{call} raised {type(error).__name__}: {error}. Fix: {fix}") from None
    require(isinstance(result, returns), f"{call} returned a {type(result).__name__}, not a "
                                         f"{returns.__name__.lower()}. Fix: {fix}")
    return result


def forward(call: str, fix: str, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The module's output for a copy of ``x`` (an in-place ReLU must not change the probe)."""
    with torch.no_grad():
        out = attempt(f"{call} on an input of shape {tuple(x.shape)}", fix, module, x.clone())
    require(isinstance(out, torch.Tensor), f"{call} returned a {type(out).__name__}. Fix: "
                                           f"forward returns one tensor.")
    return out


def for_each_size(check, quiz_size: tuple, other_size: tuple):
    """``check(*quiz_size)``'s result, once ``check(*other_size)`` catches no hard-coded numbers."""
    result = check(*quiz_size)
    try:
        check(*other_size)
    except Mistake as mistake:
        raise Mistake(f"{mistake} (It passed for the quiz's sizes, so check that your code uses "
                      f"its arguments rather than fixed numbers.)") from None
    return result


def batchnorms(model: nn.Module) -> list[nn.Module]:  # BatchNorm1d, 2d, 3d and SyncBatchNorm
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def drifting_batchnorms(model: nn.Module) -> list[nn.Module]:  # frozen, yet train mode moves them
    return [m for m in batchnorms(model)
            if m.training and not any(p.requires_grad for p in m.parameters())]
