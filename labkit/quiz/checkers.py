"""Checkers grade code exercises (lesson 01 on): Python functions that a bank names.

A bank with code questions names the module that holds its checkers, ``checkers:
labkit.exercises``; that module has an explicit table, ``CHECKERS = {"vgg_block":
check_vgg_block, ...}``. A checker takes the learner's object and the bank's ``options`` as
keyword arguments, never changes the object, and returns a ``CheckResult`` that names the
problem and the fix. The quiz package imports no course module of its own accord.
"""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class CheckResult:
    """What a checker returns: a verdict and feedback aimed at the learner."""
    correct: bool
    message: str


Checker = Callable[..., CheckResult]
