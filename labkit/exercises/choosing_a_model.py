"""Checkers for lessons 10 (choosing a model) and 11 (capstone): each probe catches a mistake."""

import copy

from labkit.exercises.checks import Mistake, attempt, checker, require


def reference_pick_model(table: dict, *, max_ms: float, max_mb: float) -> str | None:
    """The most accurate model within both budgets (ties: the smaller file), or None."""
    fits = [name for name, row in table.items()
            if row["ms_per_photo"] <= max_ms and row["file_mb"] <= max_mb]
    return max(fits, key=lambda name: (table[name]["accuracy"], -table[name]["file_mb"]),
               default=None)


def _row(accuracy: float, ms: float, mb: float, **extra) -> dict:
    return {"accuracy": accuracy, "ms_per_photo": ms, "file_mb": mb, **extra}


PROBES = [  # (what it tests, table, (max_ms, max_mb), {a wrong answer: what it means. Fix})
    ("budgets", {"large": _row(0.95, 80, 98), "medium": _row(0.92, 20, 45),
                 "small": _row(0.88, 5, 10)}, (50, 50),
     {"large": "it is the most accurate, but over both budgets. Fix: keep the models within both.",
      "small": "it is the fastest, but a more accurate one fits. Fix: take the highest accuracy."}),
    ("latency", {"slow": _row(0.95, 120, 30), "quick": _row(0.90, 40, 40)}, (100, 50),
     {"slow": "over the latency budget. Fix: require row['ms_per_photo'] <= max_ms."}),
    ("size", {"heavy": _row(0.95, 20, 200), "light": _row(0.90, 30, 20)}, (100, 50),
     {"heavy": "over the size budget. Fix: require row['file_mb'] <= max_mb."}),
    ("on the budget", {"edge": _row(0.93, 50, 50), "inside": _row(0.90, 10, 10)}, (50, 50),
     {"inside": "a model exactly at the budget meets it. Fix: compare with <=, not <."}),
    ("a tie", {"big_file": _row(0.90, 10, 40), "small_file": _row(0.90, 10, 10),
               "worse": _row(0.80, 5, 5)}, (50, 50),
     {"big_file": "the larger file of two as accurate. Fix: break ties by the smaller file_mb."}),
    ("more columns", {"a": _row(0.70, 30, 30, top1=71.0), "b": _row(0.75, 35, 35, top1=69.0)},
     (100, 100), {"a": "less accurate on the task. Fix: rank by the 'accuracy' column, not top1."}),
    ("nothing fits", {"large": _row(0.95, 80, 98), "medium": _row(0.92, 60, 45)}, (10, 5), {}),
]


@checker('quiz.answer("pick_model", pick_model)', "the function pick_model")
def check_pick_model(pick_model) -> str:
    """Lesson 11: ``pick_model(table, *, max_ms, max_mb)``, as ``reference_pick_model``."""
    for what, table, (max_ms, max_mb), wrong in PROBES:
        budgets = {"max_ms": max_ms, "max_mb": max_mb}
        given, expected = copy.deepcopy(table), reference_pick_model(table, **budgets)
        answer = attempt("pick_model", "define pick_model(table, *, max_ms, max_mb); return None "
                         "when no model fits.", pick_model, given, **budgets)
        require(given == table, "pick_model changed the table it was given. Fix: only read it.")
        if answer == expected:
            continue
        require(expected is not None, f"No model fits {budgets}, but pick_model returned "
                                      f"{answer!r}. Fix: return None then.")
        require(not isinstance(answer, (dict, tuple)), f"pick_model returned a "
                f"{type(answer).__name__}. Fix: return the model's name, a key of the table.")
        shown = f"For the probe table '{what}' ({budgets}) pick_model returned {answer!r}"
        if isinstance(answer, str) and answer in wrong:
            raise Mistake(f"{shown}: {wrong[answer]}")
        raise Mistake(f"{shown}, not {expected!r}. Fix: the most accurate model within both.")
    return f"Well done: on all {len(PROBES)} probe tables, the right pick, or None if none fits."


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


@checker('quiz.answer("split_halves", split_halves)', "the function split_halves")
def check_split_halves(split_halves) -> str:
    """Lesson 10: ``split_halves(val_by_class)``, as ``reference_split_halves``."""
    for probe in SPLIT_PROBES:
        given, flat = copy.deepcopy(probe), [i for ids in probe for i in ids]
        answer = attempt(f"split_halves({probe})", "val_by_class is a list with one list of "
                         "indices per class.", split_halves, given)
        require(given == probe, "split_halves changed the lists it was given. Fix: only read them.")
        require(isinstance(answer, tuple) and len(answer) == 2, f"split_halves returned {answer!r}"
                f", not a pair (selection, test). Fix: return selection, test.")
        selection, test = (sorted(half) for half in answer)
        want = tuple(sorted(half) for half in reference_split_halves(probe))
        if (selection, test) == want:
            continue
        require(not set(selection) & set(test), "Some photos are in both halves. Fix: each photo "
                                                "goes to exactly one half.")
        require(sorted(selection + test) == sorted(flat), f"Halves hold {len(selection + test)} "
                f"photos, not the {len(flat)} given. Fix: use every validation photo once.")
        require((test, selection) != want, "The halves are swapped. Fix: the first photo of each "
                                           "class goes to the selection half (ids[0::2]).")
        require(selection != sorted(i for ids in probe for i in ids[:(len(ids) + 1) // 2]), "You "
                "split each class into its first and second half. Fix: ids[0::2] and ids[1::2].")
        require(selection not in (sorted(flat)[0::2], sorted(flat[0::2])), "You alternated over "
                "all photos at once. Fix: alternate within each class, then join the classes.")
        raise Mistake(f"For {probe} split_halves returned {answer}, not "
                      f"{reference_split_halves(probe)}. Fix: alternate within each class.")
    return f"Well done: on all {len(SPLIT_PROBES)} probes, each class alternates between halves."
