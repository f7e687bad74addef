"""Checkers for lessons 10 (choosing a model) and 11 (capstone), on probes of their own, each
built so that one usual mistake gives a wrong answer.

Lesson 10: ``split_halves(val_by_class)`` -> ``(selection, test)``: within each class the
first photo goes to the selection half, the second to the test half, and so on.
Lesson 11: ``pick_model(table, *, max_ms, max_mb)`` -> the name of the most accurate model
within both budgets (a value equal to the budget is within it; ties: the smaller file), or
``None`` when no model fits. ``table`` maps a name to ``{"accuracy", "ms_per_photo",
"file_mb", ...}``.
"""

from __future__ import annotations

import copy

from labkit.exercises.checks import Mistake, attempt, checker, expect_callable, require

__all__ = ["check_pick_model", "reference_pick_model", "PROBES",
           "check_split_halves", "reference_split_halves", "SPLIT_PROBES"]


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


def _check_pick(pick_model, what: str, table: dict, budgets: dict, wrong: dict) -> None:
    given = copy.deepcopy(table)
    expected = reference_pick_model(table, **budgets)
    fix = ("define it as def pick_model(table, *, max_ms, max_mb); each row is a dict with the "
           "keys 'accuracy', 'ms_per_photo' and 'file_mb'.")
    if expected is None:
        fix = "return None when no model fits the budgets, so the caller can decide what to do."
    answer = attempt("pick_model(table, max_ms=..., max_mb=...)", fix, pick_model, given,
                     **budgets)
    require(given == table, "pick_model changed the table it was given. Fix: only read it.")
    if answer == expected:
        return
    require(expected is not None, f"No model fits budgets of {budgets['max_ms']} ms and "
            f"{budgets['max_mb']} MB, but pick_model returned {answer!r}. Fix: return None when "
            f"no model fits.")
    require(not isinstance(answer, (dict, tuple)), f"pick_model returned a "
            f"{type(answer).__name__}; it should return the model's name, a key of the table "
            f"({expected!r} here). Fix: return the name.")
    if isinstance(answer, str) and answer in wrong:
        raise Mistake(wrong[answer])
    raise Mistake(f"For the probe table '{what}' ({', '.join(table)}; budgets {budgets['max_ms']} "
                  f"ms and {budgets['max_mb']} MB) pick_model returned {answer!r}, expected "
                  f"{expected!r}. Fix: the most accurate model within both budgets.")


@checker
def check_pick_model(pick_model) -> str:
    """``pick_model(table, *, max_ms, max_mb)`` returns the most accurate model within both
    budgets (ties: the smaller file), or None if none fits."""
    expect_callable(pick_model, 'quiz.answer("pick_model", pick_model)', "the function pick_model")
    for probe in PROBES:
        _check_pick(pick_model, *probe)
    return (f"Well done: on all {len(PROBES)} probe tables pick_model returned the most accurate "
            f"model within both budgets, broke ties by the smaller file, and returned None when "
            f"nothing fits.")


# --- lesson 10: the selection half and the test half ---------------------------------------------

def reference_split_halves(val_by_class: list[list[int]]) -> tuple[list[int], list[int]]:
    """Alternately within each class: positions 0, 2, 4... select, 1, 3, 5... test."""
    return ([i for ids in val_by_class for i in ids[0::2]],
            [i for ids in val_by_class for i in ids[1::2]])


SPLIT_PROBES = [  # each shows one usual mistake
    [[0, 1, 2, 3], [4, 5, 6, 7]],
    [[0, 1, 2], [3, 4, 5]],                  # odd classes: pooling the classes shows here
    [[12, 3, 40, 7, 9], [1, 22, 8]],         # indices out of order: sorting shows here
    [[5, 6, 7, 8, 9, 10], [], [0, 1]],       # an empty class
]


def _check_split(split_halves, probe: list[list[int]]) -> None:
    given = copy.deepcopy(probe)
    answer = attempt(f"split_halves({probe})", "val_by_class is a list with one list of indices "
                     "per class.", split_halves, given)
    require(given == probe, "split_halves changed the lists it was given. Fix: only read them.")
    require(isinstance(answer, tuple) and len(answer) == 2, f"split_halves returned {answer!r}; "
            f"expected a pair (selection, test). Fix: return selection, test.")
    selection, test = (sorted(half) for half in answer)
    want = tuple(sorted(half) for half in reference_split_halves(probe))
    if (selection, test) == want:
        return
    everything = sorted(i for ids in probe for i in ids)
    require(not set(selection) & set(test), "Some photos are in both halves. Fix: each photo "
            "goes to exactly one half; a photo that chose the model must not grade it.")
    require(sorted(selection + test) == everything, f"For {probe} the two halves hold "
            f"{len(selection) + len(test)} photos, not the {len(everything)} given. Fix: every "
            f"validation photo goes to one half.")
    require((test, selection) != want, "The halves are swapped: the first photo of each class "
            "goes to the selection half. Fix: selection takes positions 0, 2, 4... (ids[0::2]).")
    require(selection != sorted(i for ids in probe for i in ids[:(len(ids) + 1) // 2]),
            "You split each class into its first and second half; photos next to each other in "
            "file order often come from one session or camera, so the halves can differ. Fix: "
            "alternate within each class, ids[0::2] and ids[1::2].")
    flat = [i for ids in probe for i in ids]
    require(selection not in (everything[0::2], sorted(flat[0::2])), "You alternated over all "
            "photos at once, so a class with an odd number of photos is no longer split evenly. "
            "Fix: alternate within each class, then join the classes.")
    raise Mistake(f"For {probe} split_halves returned selection {answer[0]} and test {answer[1]}; "
                  f"expected {list(reference_split_halves(probe))}. Fix: within each class, "
                  f"positions 0, 2, 4... to the selection half and 1, 3, 5... to the test half.")


@checker
def check_split_halves(split_halves) -> str:
    """``split_halves(val_by_class)`` returns ``(selection, test)``, alternating within each
    class, the first photo of a class to the selection half."""
    expect_callable(split_halves, 'quiz.answer("split_halves", split_halves)',
                    "the function split_halves")
    for probe in SPLIT_PROBES:
        _check_split(split_halves, probe)
    return (f"Well done: on all {len(SPLIT_PROBES)} probes split_halves kept every photo in "
            f"exactly one half and alternated within each class.")
