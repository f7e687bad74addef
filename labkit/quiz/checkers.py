"""Checkers for code exercises: Python functions, registered by name, that inspect a learner's
object and say precisely what is wrong with it.

A quiz bank names a checker (``checker: frozen_backbone``); it never contains code. A lesson
or labkit registers the function::

    from labkit.quiz import CheckResult, register_checker

    @register_checker("tensor_on_device")
    def check_tensor_on_device(tensor, *, device: str) -> CheckResult:
        ...

A checker takes the learner's object plus the ``options`` the bank gives (keyword arguments,
plain data) and returns a ``CheckResult``. It should name the problem and the fix, and never
modify the learner's object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from labkit.quiz.grading import CheckResult

__all__ = ["CheckResult", "register_checker", "get_checker", "registered_checkers",
           "check_frozen_backbone"]

Checker = Callable[..., CheckResult]
_CHECKERS: dict[str, Checker] = {}


def register_checker(name: str) -> Callable[[Checker], Checker]:
    """Decorator: make ``function`` the checker that quiz banks call ``name``.

    Registering a name again replaces the earlier function, so re-running a notebook cell
    that defines a checker works as expected.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a checker name must be a non-empty string, got {name!r}. "
                         f"Fix: @register_checker(\"frozen_backbone\").")

    def register(function: Checker) -> Checker:
        _CHECKERS[name] = function
        return function
    return register


def _load_course_checkers() -> None:
    # The lessons' checkers live in labkit.exercises; importing it registers them. Late
    # import: labkit.exercises imports this module.
    import labkit.exercises  # noqa: F401


def registered_checkers() -> list[str]:
    _load_course_checkers()
    return sorted(_CHECKERS)


def get_checker(name: str) -> Checker:
    _load_course_checkers()
    try:
        return _CHECKERS[name]
    except KeyError:
        known = ", ".join(registered_checkers()) or "none yet"
        raise KeyError(
            f"no checker is registered as {name!r} (registered: {known}). Fix: define it in "
            f"Python with @register_checker({name!r}) before the quiz is loaded, or correct "
            f"the name in the quiz bank.") from None


def _count(params) -> int:
    return sum(p.numel() for p in params)


@register_checker("frozen_backbone")
def check_frozen_backbone(model: Any, *, num_classes: int | None = None) -> CheckResult:
    """Feature extraction set-up: only the head trains, frozen BatchNorm stays in eval mode,
    and (if the bank says so) the head has ``num_classes`` outputs."""
    from torch import nn  # late: loading a quiz bank must not cost a torch import

    from labkit.transfer import head_modules

    if not isinstance(model, nn.Module):
        return CheckResult(False, f"Expected a model (a torch.nn.Module), got a "
                                  f"{type(model).__name__}. Fix: pass the model itself.")
    try:
        heads = head_modules(model)
    except TypeError as error:
        return CheckResult(False, str(error))
    head_ids = {id(p) for head in heads.values() for p in head.parameters()}
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    trainable_backbone = _count(p for p in backbone if p.requires_grad)
    if trainable_backbone:
        return CheckResult(False, f"The backbone is still trainable: {trainable_backbone:,} "
                                  f"parameters require grad. Fix: freeze_backbone(model), or "
                                  f"model.requires_grad_(False) and then unfreeze the head.")
    head_params = [p for head in heads.values() for p in head.parameters()]
    frozen_head = _count(p for p in head_params if not p.requires_grad)
    if frozen_head:
        name = next(iter(heads))
        return CheckResult(False, f"The head is frozen too: {frozen_head:,} of its parameters "
                                  f"do not require grad, so nothing would learn. Fix: "
                                  f"model.{name}.requires_grad_(True).")
    # The course's rule (see labkit.transfer): a fully frozen BatchNorm layer stays in eval
    # mode, or training drags its ImageNet running statistics towards the new data.
    drifting = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
                and m.training and not any(p.requires_grad for p in m.parameters())]
    if drifting:
        return CheckResult(False, f"{len(drifting)} frozen BatchNorm layers are in train mode, "
                                  f"so their running statistics would still change. Fix: "
                                  f"freeze_backbone(model) puts them in eval mode, and "
                                  f"train_mode(model) keeps them there.")
    name, head = next(iter(heads.items()))
    outputs = getattr(head, "out_features", None)
    if num_classes is not None and outputs != num_classes:
        return CheckResult(False, f"The head model.{name} has {outputs} outputs but the task has "
                                  f"{num_classes} classes. Fix: "
                                  f"replace_head(model, num_classes={num_classes}).")
    return CheckResult(True, f"Well done: the backbone is frozen and only the head's "
                             f"{_count(head_params):,} parameters will train.")
