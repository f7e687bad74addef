"""Merge learners' results files into one gradebook, for an instructor.

``python -m labkit quiz gradebook handed-in/ -o gradebook.csv`` reads every results file
(``export`` makes one per learner), one CSV row per file, with columns

    learner, file, total, max_total, <quiz>:score, <quiz>:max_score, <quiz>/<question>, ...

where a question cell is 1 (answered correctly), 0 (answered wrong, or the answer was shown)
or empty (not answered). A file that cannot be read is never skipped silently: it is listed,
with the reason, in ``Gradebook.unreadable``, and the command reports it and exits non-zero.

Handed-in files are checked value by value before any is used: every score is a finite number
with 0 <= score <= max_score, every quiz and question id is a bank id (letters, digits, _ . -,
so no two columns can share a header), the learner's name is text, and a question's record
holds true/false and whole numbers. A file that fails one check is listed with the reason and
left out; the rest of the gradebook is still made. In the CSV every cell is quoted, and a text
cell that a spreadsheet would read as a formula (starting with = + - @, a tab or a carriage
return) is prefixed with a single quote, as OWASP advises against CSV injection.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from labkit.quiz.bank import ID_PATTERN
from labkit.quiz.store import read_results

__all__ = ["Gradebook", "BadValue", "collect_files", "build_gradebook"]


@dataclass
class Gradebook:
    columns: list[str]
    rows: list[dict[str, object]]
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason)
    duplicates: list[str] = field(default_factory=list)  # learners with more than one file

    def csv_text(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns, restval="", lineterminator="\n",
                                quoting=csv.QUOTE_ALL)  # a carriage return in a name stays inside
        writer.writeheader()
        writer.writerows({key: _no_formula(value) for key, value in row.items()}
                         for row in self.rows)
        return out.getvalue()

    def summary(self) -> str:
        lines = [f"gradebook: {len(self.rows)} results file(s) merged, "
                 f"{len(self.unreadable)} could not be read."]
        lines += [f"  UNREADABLE {path}: {reason}" for path, reason in self.unreadable]
        lines += [f"  NOTE learner {name!r} has more than one results file; each is a row."
                  for name in self.duplicates]
        return "\n".join(lines)


def collect_files(sources: list[Path | str]) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Every .json file named or inside a named folder (recursively), and missing sources."""
    files, missing = [], []
    for source in map(Path, sources):
        if source.is_dir():
            files += sorted(p for p in source.rglob("*.json") if p.is_file())
        elif source.is_file():
            files.append(source)
        else:
            missing.append((source, "no such file or folder"))
    return files, missing


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _no_formula(value: object) -> object:
    """``value``, with a single quote before text that a spreadsheet would run as a formula."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


class BadValue(ValueError):
    """A value in a results file that no labkit quiz writes; the file is left out."""


def _number(value: object, what: str) -> float:
    """``value`` as a finite float (an absent value is 0), else BadValue naming ``what``."""
    if value is None:
        return 0.0
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadValue(f"{what} is {_show(value)}, not a number")
    try:
        number = float(value)
    except OverflowError:  # an integer with hundreds of digits
        raise BadValue(f"{what} is a {len(str(abs(value)))}-digit number, too large for any "
                       f"score") from None
    if not math.isfinite(number):
        raise BadValue(f"{what} is {number}, not a finite number")
    return number


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_id(kind: str, value: str) -> None:
    if not ID_PATTERN.fullmatch(value):
        raise BadValue(f"{kind} id {_show(value)} is not a bank id (letters, digits, _ . -), "
                       f"so its column could take another's header")


def _checked_scores(quiz_id: str, quiz: dict) -> tuple[float, float]:
    """The quiz's (score, max_score), each finite with 0 <= score <= max_score."""
    score = _number(quiz.get("score"), f"quiz {quiz_id!r}: score")
    max_score = _number(quiz.get("max_score"), f"quiz {quiz_id!r}: max_score")
    if max_score < 0 or score < 0:
        raise BadValue(f"quiz {quiz_id!r}: score {score:g} or max_score {max_score:g} is "
                       f"negative")
    if score > max_score:
        raise BadValue(f"quiz {quiz_id!r}: score {score:g} is more than max_score {max_score:g}")
    return score, max_score


def _question_cell(quiz_id: str, question_id: str, record: dict) -> object:
    """1 (answered correctly), 0 (answered wrong, or the answer was shown) or "" (not answered)."""
    where = f"quiz {quiz_id!r}, question {question_id!r}"
    for key in ("correct", "revealed"):
        if record.get(key) is not None and not isinstance(record[key], bool):
            raise BadValue(f"{where}: {key} is {_show(record[key])}, not true or false")
    attempts = record.get("attempts")
    if attempts is not None and (isinstance(attempts, bool) or not isinstance(attempts, int)
                                 or attempts < 0):
        raise BadValue(f"{where}: attempts is {_show(attempts)}, not a whole number >= 0")
    if record.get("correct") is True:
        return 1
    return 0 if attempts or record.get("revealed") else ""


def _row(path: Path, data: dict) -> dict[str, object]:
    """The file's gradebook row; BadValue if any value in it could not have been written."""
    learner = data.get("learner") or path.stem
    if not isinstance(learner, str):
        raise BadValue(f"learner is {_show(learner)}, not a name")
    row: dict[str, object] = {"learner": learner, "file": str(path)}
    total = max_total = 0.0
    for quiz_id, quiz in data["quizzes"].items():
        _check_id("quiz", quiz_id)
        score, max_score = _checked_scores(quiz_id, quiz)
        row[f"{quiz_id}:score"], row[f"{quiz_id}:max_score"] = f"{score:g}", f"{max_score:g}"
        total, max_total = total + score, max_total + max_score
        for question_id, record in quiz["questions"].items():
            _check_id("question", question_id)
            row[f"{quiz_id}/{question_id}"] = _question_cell(quiz_id, question_id, record)
    if not math.isfinite(max_total):
        raise BadValue("the scores add up to more than a number can hold")
    row["total"], row["max_total"] = f"{total:g}", f"{max_total:g}"
    return row


def _read(path: Path) -> dict:
    """``read_results``, with the ways JSON itself can fail turned into a plain reason."""
    try:
        return read_results(path)
    except RecursionError:
        raise BadValue("nested too deeply to be a results file") from None
    except ValueError as error:
        if "digits" in str(error):  # json refuses integers past sys.get_int_max_str_digits()
            raise BadValue("holds a number with thousands of digits, which no score has") from None
        raise


def build_gradebook(sources: list[Path | str]) -> Gradebook:
    """One row per readable results file in ``sources``; every other file in ``unreadable``."""
    files, unreadable = collect_files(sources)
    rows, quizzes = [], []
    for path in files:
        try:
            data = _read(path)
            rows.append(_row(path, data))  # every value checked before the file is used
        except (ValueError, OSError) as error:  # ResultsFileError and BadValue are ValueErrors
            unreadable.append((path, str(error)))
            continue
        quizzes.append(data["quizzes"])
    # Quizzes and questions in first-seen order: the order the quiz itself saved them in.
    questions: dict[str, list[str]] = {}
    for saved in quizzes:
        for quiz_id, quiz in saved.items():
            known = questions.setdefault(quiz_id, [])
            known += [q for q in quiz["questions"] if q not in known]
    columns = ["learner", "file", "total", "max_total"]
    for quiz_id, ids in questions.items():
        columns += [f"{quiz_id}:score", f"{quiz_id}:max_score", *(f"{quiz_id}/{q}" for q in ids)]
    rows.sort(key=lambda r: (str(r["learner"]), str(r["file"])))
    names = [str(r["learner"]) for r in rows]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    return Gradebook(columns, rows, unreadable, duplicates)
