"""Merge learners' results files into one gradebook, for an instructor.

``python -m labkit quiz gradebook handed-in/ -o gradebook.csv`` reads every results file
(``export`` makes one per learner), one CSV row per file, with columns

    learner, file, total, max_total, <quiz>:score, <quiz>:max_score, <quiz>/<question>, ...

where a question cell is 1 (answered correctly), 0 (answered wrong, or the answer was shown)
or empty (not answered). A file that cannot be read is never skipped silently: it is listed,
with the reason, in ``Gradebook.unreadable``, and the command reports it and exits non-zero.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

from labkit.quiz.store import ResultsFileError, read_results

__all__ = ["Gradebook", "collect_files", "build_gradebook"]


@dataclass
class Gradebook:
    columns: list[str]
    rows: list[dict[str, object]]
    unreadable: list[tuple[Path, str]] = field(default_factory=list)  # (file, reason)
    duplicates: list[str] = field(default_factory=list)  # learners with more than one file

    def csv_text(self) -> str:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
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


def _question_cell(record: dict) -> object:
    if record.get("correct") is True:
        return 1
    if record.get("attempts") or record.get("revealed"):
        return 0
    return ""


def _row(path: Path, data: dict) -> dict[str, object]:
    row: dict[str, object] = {"learner": data.get("learner") or path.stem, "file": str(path)}
    total = max_total = 0.0
    for quiz_id, quiz in data["quizzes"].items():
        score, max_score = float(quiz.get("score") or 0), float(quiz.get("max_score") or 0)
        row[f"{quiz_id}:score"], row[f"{quiz_id}:max_score"] = f"{score:g}", f"{max_score:g}"
        total, max_total = total + score, max_total + max_score
        for question_id, record in quiz["questions"].items():
            row[f"{quiz_id}/{question_id}"] = _question_cell(record)
    row["total"], row["max_total"] = f"{total:g}", f"{max_total:g}"
    return row


def build_gradebook(sources: list[Path | str]) -> Gradebook:
    files, unreadable = collect_files(sources)
    loaded = []
    for path in files:
        try:
            loaded.append((path, read_results(path)))
        except (ResultsFileError, OSError) as error:
            unreadable.append((path, str(error)))
    # Quizzes and questions in first-seen order: the order the quiz itself saved them in.
    questions: dict[str, list[str]] = {}
    for _, data in loaded:
        for quiz_id, quiz in data["quizzes"].items():
            known = questions.setdefault(quiz_id, [])
            known += [q for q in quiz["questions"] if q not in known]
    columns = ["learner", "file", "total", "max_total"]
    for quiz_id, ids in questions.items():
        columns += [f"{quiz_id}:score", f"{quiz_id}:max_score", *(f"{quiz_id}/{q}" for q in ids)]
    rows = []
    for path, data in loaded:
        try:
            rows.append(_row(path, data))
        except (TypeError, ValueError) as error:
            unreadable.append((path, f"a score is not a number ({error})"))
    rows.sort(key=lambda r: (str(r["learner"]), str(r["file"])))
    names = [str(r["learner"]) for r in rows]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    return Gradebook(columns, rows, unreadable, duplicates)
