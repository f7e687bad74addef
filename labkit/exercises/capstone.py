"""Checker for lesson 11 (the capstone): the learner's rule for picking a model under budgets.

The learner hands in ``pick_model(table, *, max_ms, max_mb)``. ``table`` maps a model's name
to its measured row, ``{"accuracy": ..., "ms_per_photo": ..., "file_mb": ...}`` (more keys
may be there). The function returns the name of the most accurate model whose latency and
download size are both within budget (a value equal to the budget is within it); among
equally accurate models the smaller file; ``None`` when no model fits.

The checker never sees the learner's own table: it calls the function on probe tables of its
own, each built so that one usual mistake gives a wrong name, and says which mistake it was.
"""

from __future__ import annotations

import copy
from typing import Any

from labkit.quiz.checkers import CheckResult, register_checker

__all__ = ["check_pick_model", "reference_pick_model", "PROBES"]

HAND_IN = 'quiz.answer("pick_model", pick_model)'


def reference_pick_model(table: dict, *, max_ms: float, max_mb: float) -> str | None:
    """What the exercise asks for, written plainly."""
    fits = [name for name, row in table.items()
            if row["ms_per_photo"] <= max_ms and row["file_mb"] <= max_mb]
    if not fits:
        return None
    return max(fits, key=lambda name: (table[name]["accuracy"], -table[name]["file_mb"]))


def _row(accuracy: float, ms: float, mb: float, **extra) -> dict:
    return {"accuracy": accuracy, "ms_per_photo": ms, "file_mb": mb, **extra}


# (what the probe tests, table, budgets, {a wrong answer: what it means and how to fix it})
PROBES = [
    ("budgets", {"large": _row(0.95, 80, 98), "medium": _row(0.92, 20, 45),
                 "small": _row(0.88, 5, 10)}, {"max_ms": 50, "max_mb": 50},
     {"large": "You returned the most accurate model overall, but it is over both budgets. "
               "Fix: keep only the rows with ms_per_photo <= max_ms and file_mb <= max_mb, "
               "then take the most accurate of those.",
      "small": "You returned the fastest, smallest model, but a more accurate one fits the "
               "budgets too. Fix: among the models that fit, take the highest accuracy."}),
    ("latency", {"slow": _row(0.95, 120, 30), "quick": _row(0.90, 40, 40)},
     {"max_ms": 100, "max_mb": 50},
     {"slow": "You returned a model that takes 120 ms per photo with a budget of 100 ms: the "
              "latency budget is not checked. Fix: require row['ms_per_photo'] <= max_ms."}),
    ("size", {"heavy": _row(0.95, 20, 200), "light": _row(0.90, 30, 20)},
     {"max_ms": 100, "max_mb": 50},
     {"heavy": "You returned a 200 MB model with a budget of 50 MB: the size budget is not "
               "checked. Fix: require row['file_mb'] <= max_mb."}),
    ("on the budget", {"edge": _row(0.93, 50, 50), "inside": _row(0.90, 10, 10)},
     {"max_ms": 50, "max_mb": 50},
     {"inside": "A model exactly at the budget (50 ms, 50 MB, budgets 50 and 50) meets it, "
                "but you left it out. Fix: compare with <=, not <."}),
    ("a tie", {"big_file": _row(0.90, 10, 40), "small_file": _row(0.90, 10, 10),
               "worse": _row(0.80, 5, 5)}, {"max_ms": 50, "max_mb": 50},
     {"big_file": "Two models are equally accurate and you returned the one with the larger "
                  "file. Fix: break ties by the smaller file_mb, e.g. max(..., key=lambda "
                  "name: (accuracy, -file_mb))."}),
    ("more columns", {"a": _row(0.70, 30, 30, params=5_000_000, top1=71.0),
                      "b": _row(0.75, 35, 35, params=9_000_000, top1=69.0)},
     {"max_ms": 100, "max_mb": 100},
     {"a": "You returned a model that is less accurate on the task. Fix: rank by the "
           "'accuracy' column, not by another one such as the ImageNet top-1."}),
    ("nothing fits", {"large": _row(0.95, 80, 98), "medium": _row(0.92, 60, 45)},
     {"max_ms": 10, "max_mb": 5}, {}),
]


def _call(pick_model, table: dict, budgets: dict) -> tuple[Any, str | None]:
    try:
        return pick_model(table, **budgets), None
    except TypeError as error:
        return None, (f"pick_model(table, max_ms=..., max_mb=...) raised TypeError: {error}. "
                      f"Fix: define it as def pick_model(table, *, max_ms, max_mb).")
    except Exception as error:  # noqa: BLE001  (any error in the learner's code)
        if not any(row["ms_per_photo"] <= budgets["max_ms"] and row["file_mb"] <= budgets["max_mb"]
                   for row in table.values()):
            return None, (f"When no model fits the budgets, pick_model raised "
                          f"{type(error).__name__}: {error}. Fix: return None in that case, "
                          f"so the caller can decide what to do.")
        return None, (f"pick_model raised {type(error).__name__}: {error}. Fix: each row is a "
                      f"dict with the keys 'accuracy', 'ms_per_photo' and 'file_mb'.")


def _problem(pick_model, what: str, table: dict, budgets: dict, wrong: dict) -> str | None:
    before = copy.deepcopy(table)
    answer, error = _call(pick_model, table, budgets)
    if error:
        return error
    if table != before:
        return "pick_model changed the table it was given. Fix: only read it."
    expected = reference_pick_model(before, **budgets)
    if answer == expected:
        return None
    if expected is None:
        return (f"No model fits budgets of {budgets['max_ms']} ms and {budgets['max_mb']} MB, "
                f"but pick_model returned {answer!r}. Fix: return None when no model fits.")
    if isinstance(answer, dict) or (isinstance(answer, tuple) and expected in answer):
        return (f"pick_model returned a {type(answer).__name__}; it should return the model's "
                f"name, a key of the table ({expected!r} here). Fix: return the name.")
    if isinstance(answer, str) and answer in wrong:
        return wrong[answer]
    return (f"For the probe table '{what}' ({', '.join(before)}; budgets {budgets['max_ms']} ms "
            f"and {budgets['max_mb']} MB) pick_model returned {answer!r}, expected "
            f"{expected!r}: the most accurate model within both budgets.")


@register_checker("model_choice")
def check_pick_model(pick_model: Any) -> CheckResult:
    """``pick_model(table, *, max_ms, max_mb)`` returns the most accurate model within both
    budgets (ties: the smaller file), or None if none fits."""
    if not callable(pick_model):
        return CheckResult(False, f"Expected the function pick_model itself, got a "
                                  f"{type(pick_model).__name__}. Fix: {HAND_IN}.")
    for what, table, budgets, wrong in PROBES:
        problem = _problem(pick_model, what, copy.deepcopy(table), budgets, wrong)
        if problem:
            return CheckResult(False, problem)
    return CheckResult(True, f"Well done: on all {len(PROBES)} probe tables pick_model "
                             "returned the most accurate model within both budgets, broke "
                             "ties by the smaller file, and returned None when nothing fits.")
