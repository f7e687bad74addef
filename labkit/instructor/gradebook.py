"""``python -m labkit quiz gradebook handed-in/ -o gradebook.csv``: a row per results file with
the total, each quiz's score and 1 / 0 / empty per question. A file with a value no quiz writes
is listed in ``unreadable``; formula-like text gets a leading ``'`` (OWASP, CSV injection)."""

import csv
import io
import math
import re
import reprlib
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from labkit.quiz.store import read_results

# The ids banks may use: without "/" or ":", no two columns can share a header.
BANK_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class Gradebook:
    columns: list[str]
    rows: list[dict[str, object]]
    unreadable: list[tuple[Path, str]]  # (file, reason)

    def csv_text(self) -> str:
        out = io.StringIO()
        # Every cell quoted, so a carriage return in a name stays inside its cell.
        writer = csv.DictWriter(out, self.columns, lineterminator="\n", quoting=csv.QUOTE_ALL)
        writer.writeheader()
        writer.writerows({key: "'" + value if str(value).startswith(FORMULA_STARTS) else value
                          for key, value in row.items()} for row in self.rows)
        return out.getvalue()

    def summary(self) -> str:
        merged = f"{len(self.rows)} results file(s) merged, {len(self.unreadable)} unreadable"
        learners = Counter(row["learner"] for row in self.rows)
        return "\n".join([f"gradebook: {merged}."]
                         + [f"  UNREADABLE {path}: {why}" for path, why in self.unreadable]
                         + [f"  NOTE learner {name!r} has several results files, a row each."
                            for name, files in sorted(learners.items()) if files > 1])


def _number(value: object, what: str) -> float:
    """``value`` as a finite float (absent is 0), else ValueError naming ``what``."""
    try:  # type(), not isinstance(): true and false are not scores
        number = 0.0 if value is None else float(value) if type(value) in (int, float) else None
    except OverflowError:  # an integer of hundreds of digits
        number = math.inf
    if number is None or not math.isfinite(number):
        raise ValueError(f"{what} is {reprlib.repr(value)}, not a finite number")
    return number


def _row(path: Path, data: dict) -> dict[str, object]:
    """The file's row, every value checked; ValueError names the first one no quiz writes."""
    learner = data.get("learner") or path.stem
    if not isinstance(learner, str):
        raise ValueError(f"learner is {reprlib.repr(learner)}, not a name")
    row: dict[str, object] = {"learner": learner, "file": str(path)}
    total = max_total = 0.0
    for quiz_id, quiz in data["quizzes"].items():
        for kind, name in [("quiz", quiz_id), *(("question", q) for q in quiz["questions"])]:
            if not BANK_ID.fullmatch(name):
                raise ValueError(f"{kind} id {reprlib.repr(name)} is not a bank id (letters, "
                                 "digits, _ . -), so its column could take another's header")
        score = _number(quiz.get("score"), f"quiz {quiz_id!r}: score")
        max_score = _number(quiz.get("max_score"), f"quiz {quiz_id!r}: max_score")
        if not 0 <= score <= max_score:
            raise ValueError(f"quiz {quiz_id!r}: score {score:g} is negative or more than "
                             f"max_score {max_score:g}")
        row[f"{quiz_id}:score"], row[f"{quiz_id}:max_score"] = f"{score:g}", f"{max_score:g}"
        total, max_total = total + score, max_total + max_score
        for question_id, record in quiz["questions"].items():
            for key, kind in (("correct", bool), ("revealed", bool), ("attempts", int)):
                value = record.get(key)
                if value is not None and (type(value) is not kind or value < 0):
                    raise ValueError(f"quiz {quiz_id!r}, question {question_id!r}: {key} is "
                                     f"{reprlib.repr(value)}, which no quiz writes")
            tried = record.get("attempts") or record.get("revealed")
            row[f"{quiz_id}/{question_id}"] = 1 if record.get("correct") else 0 if tried else ""
    if not math.isfinite(max_total):
        raise ValueError("the scores add up to more than a number can hold")
    row["total"], row["max_total"] = f"{total:g}", f"{max_total:g}"
    return row


def build_gradebook(sources: list[Path | str]) -> Gradebook:
    """One row per readable results file among ``sources`` (files, or folders searched for
    ``*.json``); every other file, with the reason, in ``unreadable``."""
    files, unreadable = [], []
    for source in map(Path, sources):
        if source.is_dir():
            files += sorted(p for p in source.rglob("*.json") if p.is_file())
        elif source.is_file():
            files.append(source)
        else:
            unreadable.append((source, "no such file or folder"))
    rows, questions = [], {}  # questions: quiz id -> its question ids, in first-seen order
    for path in files:
        try:
            data = read_results(path)
            rows.append(_row(path, data))
        except (ValueError, OSError, RecursionError) as error:  # RecursionError: deep nesting
            # json refuses integers of thousands of digits, with a fix meant for programmers.
            unreadable.append((path, "holds a number with thousands of digits, which no score "
                               "has" if "int_max_str_digits" in str(error) else str(error)))
            continue
        for quiz_id, quiz in data["quizzes"].items():
            questions.setdefault(quiz_id, {}).update(dict.fromkeys(quiz["questions"]))
    columns = ["learner", "file", "total", "max_total"]
    for quiz_id, ids in questions.items():
        columns += [f"{quiz_id}:score", f"{quiz_id}:max_score", *(f"{quiz_id}/{q}" for q in ids)]
    rows.sort(key=lambda row: (row["learner"], row["file"]))
    return Gradebook(columns, rows, unreadable)
