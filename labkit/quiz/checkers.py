"""Checkers grade code exercises (lesson 01 on). A bank names the module of its checkers
(``checkers: labkit.exercises``), whose ``CHECKERS`` table maps names to functions. A checker
takes the learner's object and the question's ``options`` as keyword arguments, never changes
the object, and returns a ``CheckResult`` that names the problem and the fix.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class CheckResult:
    """What a checker returns: a verdict and feedback aimed at the learner."""
    correct: bool
    message: str
