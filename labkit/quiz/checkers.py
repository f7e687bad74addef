"""Checkers grade code exercises: Python functions that a bank names and a module lists.

A bank with code questions names the module that holds its checkers, ``checkers:
labkit.exercises``; that module has an explicit table, ``CHECKERS = {"vgg_block":
check_vgg_block, ...}``. A checker takes the learner's object and the bank's ``options`` as
keyword arguments, never changes the object, and returns a ``CheckResult`` that names the
problem and the fix. Tests and instructors may pass a table directly: ``load_bank(path,
checkers={...})``. The quiz package imports no course module of its own accord.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class CheckResult:
    """What a checker returns: a verdict and feedback aimed at the learner."""
    correct: bool
    message: str


Checker = Callable[..., CheckResult]


def checker_table(module: str) -> Mapping[str, Checker]:
    """The ``CHECKERS`` table of ``module``; ValueError saying why and what to do if none."""
    try:
        table = importlib.import_module(module).CHECKERS
    except ModuleNotFoundError as error:
        raise ValueError(f"the checkers module {module!r} cannot be found ({error}). Fix: name "
                         f"an importable module, e.g. checkers: labkit.exercises") from None
    except AttributeError:
        raise ValueError(f"the module {module!r} has no CHECKERS table. Fix: define CHECKERS = "
                         f"{{name: function}} in it") from None
    except Exception as error:  # the module itself fails to import
        raise ValueError(f"importing the checkers module {module!r} failed: "
                         f"{type(error).__name__}: {error}. Fix: repair that module") from None
    if not isinstance(table, Mapping):
        raise ValueError(f"{module}.CHECKERS is a {type(table).__name__}, not a mapping. Fix: "
                         f"CHECKERS = {{name: function}}")
    return table
