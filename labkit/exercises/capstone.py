"""Checkers for lessons 10 and 11: how the held-out photos are split (lesson 10), and the
learner's rule for picking a model under budgets (lesson 11, the capstone).

Lesson 10 hands in ``split_halves(val_by_class)``: ``val_by_class`` holds, for each class, the
indices of its validation photos in file order. It returns ``(selection, test)``: within each
class the first photo goes to the selection half, the second to the test half, and so on.

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

__all__ = ["check_pick_model", "reference_pick_model", "PROBES",
           "check_split_halves", "reference_split_halves", "SPLIT_PROBES"]

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


# --- lesson 10: the selection half and the test half --------------------------------------------

SPLIT_HAND_IN = 'quiz.answer("split_halves", split_halves)'


def reference_split_halves(val_by_class: list[list[int]]) -> tuple[list[int], list[int]]:
    """Alternately within each class: positions 0, 2, 4... select, 1, 3, 5... test."""
    selection = [i for ids in val_by_class for i in ids[0::2]]
    test = [i for ids in val_by_class for i in ids[1::2]]
    return selection, test


# Each probe is built so that one usual mistake gives another split than the reference's.
SPLIT_PROBES = [
    [[0, 1, 2, 3], [4, 5, 6, 7]],
    [[0, 1, 2], [3, 4, 5]],                  # odd classes: pooling the classes shows here
    [[12, 3, 40, 7, 9], [1, 22, 8]],         # indices out of order: sorting shows here
    [[5, 6, 7, 8, 9, 10], [], [0, 1]],       # an empty class
]


def _split_problem(split_halves, probe: list[list[int]]) -> str | None:
    given = copy.deepcopy(probe)
    try:
        answer = split_halves(given)
    except Exception as error:  # noqa: BLE001  (any error in the learner's code)
        return (f"split_halves({probe}) raised {type(error).__name__}: {error}. Fix: "
                f"val_by_class is a list with one list of indices per class.")
    if given != probe:
        return "split_halves changed the lists it was given. Fix: only read them."
    if not (isinstance(answer, tuple) and len(answer) == 2):
        return (f"split_halves returned {answer!r}; expected a pair (selection, test). "
                f"Fix: return selection, test.")
    selection, test = (sorted(half) for half in answer)
    want_selection, want_test = (sorted(half) for half in reference_split_halves(probe))
    if (selection, test) == (want_selection, want_test):
        return None
    everything = sorted(i for ids in probe for i in ids)
    if set(selection) & set(test):
        return ("Some photos are in both halves. Fix: each photo goes to exactly one half; "
                "a photo that chose the model must not grade it.")
    if sorted(selection + test) != everything:
        return (f"For {probe} the two halves hold {len(selection) + len(test)} photos, not "
                f"the {len(everything)} given. Fix: every validation photo goes to one half.")
    if (selection, test) == (want_test, want_selection):
        return ("The halves are swapped: the first photo of each class should go to the "
                "selection half. Fix: selection takes positions 0, 2, 4... (ids[0::2]).")
    halves = sorted(i for ids in probe for i in ids[:(len(ids) + 1) // 2])
    if selection == halves:
        return ("You split each class into its first and second half. Photos next to each "
                "other in file order often come from one session or camera, so one half can "
                "differ from the other. Fix: alternate within each class, ids[0::2] and "
                "ids[1::2].")
    pooled = sorted(everything[0::2]) if everything else []
    flat = [i for ids in probe for i in ids]
    if selection in (pooled, sorted(flat[0::2])):
        return ("You alternated over all photos at once, so with an odd number of photos in "
                "a class the halves no longer split every class evenly. Fix: alternate "
                "within each class, then join the classes.")
    return (f"For {probe} split_halves returned selection {answer[0]} and test {answer[1]}; "
            f"expected {list(reference_split_halves(probe))}: within each class, positions "
            f"0, 2, 4... to the selection half and 1, 3, 5... to the test half.")


@register_checker("held_out_split")
def check_split_halves(split_halves: Any) -> CheckResult:
    """``split_halves(val_by_class)`` returns ``(selection, test)``, alternating within each
    class, the first photo of a class to the selection half."""
    if not callable(split_halves):
        return CheckResult(False, f"Expected the function split_halves itself, got a "
                                  f"{type(split_halves).__name__}. Fix: {SPLIT_HAND_IN}.")
    for probe in SPLIT_PROBES:
        problem = _split_problem(split_halves, probe)
        if problem:
            return CheckResult(False, problem)
    return CheckResult(True, f"Well done: on all {len(SPLIT_PROBES)} probes split_halves kept "
                             "every photo in exactly one half and alternated within each "
                             "class.")
