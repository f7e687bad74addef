"""A learner's progress on each quiz, and the results file that keeps it (lesson 00).

One JSON file per learner holds every quiz (``{"format": "labkit-quiz-results", "version": 1,
"quizzes": {quiz id: {"questions": {question id: {...}}}}}``). Each attempt is saved at once,
atomically, under a lock on ``<name>.lock``, merged with what other kernels saved. A file that
cannot be read is renamed to ``<name>.corrupt-<time>.json`` (once, under the lock).
A question closes when answered correctly, revealed, or out of attempts; code exercises have
unlimited attempts and are never revealed: their solution is in the lesson.
"""

import getpass
import hashlib
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import filelock
from jsonschema import Draft202012Validator

from labkit.files import atomic_write
from labkit.quiz.bank import Bank
from labkit.quiz.grading import INVALID, WRONG, Feedback, Question

RESULTS_ENV = "LABKIT_QUIZ_RESULTS"
FORMAT = "labkit-quiz-results"
VERSION = 1
LOCK_TIMEOUT = 20  # seconds; a save holds the lock for milliseconds


RECORD = {"type": "object", "properties": {  # one question's progress, as QuizSession saves it
    **dict.fromkeys(["attempts", "hints"], {"type": "integer", "minimum": 0}),
    **dict.fromkeys(["correct", "revealed"], {"type": "boolean"}),
    **dict.fromkeys(["status", "feedback", "key"], {"type": "string"}),
    "details": {"type": "array", "items": {"type": "string"}},
    "timestamp": {"type": ["string", "null"]}}}
QUIZZES = {"type": "object", "additionalProperties": {
    "type": "object", "required": ["questions"],
    "properties": {"questions": {"type": "object", "additionalProperties": RECORD}}}}


class ResultsFileError(ValueError):
    """A results file that is not readable as labkit quiz results."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_results_path() -> Path:
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV]).expanduser()
    if os.name == "nt" and os.environ.get("APPDATA"):
        base = Path(os.environ["APPDATA"])
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "labkit" / "quiz-results.json"


def learner_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "learner"


def empty_results() -> dict:
    return {"format": FORMAT, "version": VERSION, "learner": "", "updated": None, "quizzes": {}}


def read_results(path: Path) -> dict:
    """The content of a results file; ResultsFileError (or OSError) saying why it is unusable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ResultsFileError(f"not UTF-8 text ({error.reason})") from None
    except json.JSONDecodeError as error:
        raise ResultsFileError(f"not valid JSON: {error.msg} at line {error.lineno}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ResultsFileError(f"not a labkit quiz results file (no \"format\": \"{FORMAT}\")")
    if not isinstance(data.get("version"), int) or data["version"] > VERSION:
        raise ResultsFileError(f"results format version {data.get('version')!r} is newer than "
                               f"this labkit reads ({VERSION}); update labkit")
    error = next(Draft202012Validator(QUIZZES).iter_errors(data.get("quizzes")), None)
    if error is not None:
        where = "/".join(str(part) for part in ["quizzes", *error.absolute_path])
        raise ResultsFileError(f"\"{where}\" is not what labkit writes there")
    return data


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda file: file.write(
        json.dumps(data, indent=1, ensure_ascii=False).encode("utf-8")))


class ResultsStore:
    """One learner's results file; ``notes`` keeps what went wrong, for the quiz to show."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path).expanduser() if path is not None else default_results_path()
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.notes: list[str] = []

    def tell(self, note: str, *, warn: bool = False) -> None:
        if note not in self.notes:
            self.notes.append(note)
            if warn:
                warnings.warn(note, stacklevel=4)

    def _load(self) -> tuple[dict, str | None]:
        """(content, None), or (empty results, why) when the file is damaged."""
        try:
            return read_results(self.path), None
        except FileNotFoundError:
            return empty_results(), None
        except ResultsFileError as error:
            return empty_results(), str(error)
        except OSError as error:  # permissions, a folder: report, touch nothing
            self.tell(f"Could not read your results file {self.path}: {error}. Fix: set "
                      f"{RESULTS_ENV} to a file you can read and write.")
            return empty_results(), None

    def _locked(self, work: Callable[[dict], Any], action: str, seen_damage: str | None = None):
        """``work(content)`` with the lock held, a damaged file set aside first; None on failure."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with filelock.FileLock(str(self.lock_path), timeout=LOCK_TIMEOUT):
                data, damage = self._load()
                kept = f"{self.path.stem}.corrupt-<time>{self.path.suffix} by another notebook"
                if damage is not None:
                    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")  # the lock is held
                    kept = f"{self.path.stem}.corrupt-{stamp}{self.path.suffix}"
                    os.replace(self.path, self.path.with_name(kept))
                if damage or seen_damage:
                    self.tell(f"Your results file {self.path} could not be read ("
                              f"{damage or seen_damage}). It was kept as {kept} and a new file "
                              f"was started; earlier answers are in the kept file.", warn=True)
                return work(data)
        except filelock.Timeout:
            self.tell(f"Could not {action} {self.path}: another process has held its lock "
                      f"{self.lock_path.name} for {LOCK_TIMEOUT} s. Your answers are kept in "
                      f"this kernel. Fix: wait a moment and answer again, or restart a kernel "
                      f"that hangs.")
        except OSError as error:
            self.tell(f"Could not {action} {self.path}: {error}. Fix: set {RESULTS_ENV} to a "
                      f"file in a folder you can write, then run the quiz cell again.")
        return None

    def read(self) -> dict:
        """All results; a missing file is empty, an unreadable one is set aside and reported."""
        data, damage = self._load()  # no lock needed to read: writes replace the file whole
        if damage is None:
            return data
        data = self._locked(lambda data: data, "set aside your damaged results file", damage)
        return data or empty_results()

    def update_quiz(self, quiz_id: str, change: Callable[[dict | None], dict]) -> bool:
        """Replace one quiz's entry by ``change(its entry, or None)``; False if it failed."""
        def write(data: dict) -> bool:
            data["quizzes"][quiz_id] = change(data["quizzes"].get(quiz_id))
            data["learner"] = data.get("learner") or learner_name()
            data["updated"] = now()
            write_json(self.path, data)
            return True
        return bool(self._locked(write, "save your answers to"))


def export_results(*, destination: Path | str | None = None, source: Path | str | None = None,
                   learner: str | None = None) -> Path:
    """Copy a learner's checked results to ``quiz-results-<learner>.json``, to hand in."""
    source = Path(source).expanduser() if source is not None else default_results_path()
    if not source.exists():
        raise FileNotFoundError(f"no quiz results at {source} yet: answer a quiz first, or set "
                                f"{RESULTS_ENV} to where your results are.")
    try:
        data = read_results(source)
    except ResultsFileError as error:
        raise ResultsFileError(f"{source}: {error}. Fix: open a quiz notebook once (the file is "
                               f"then set aside and a new one started) and answer again.") from None
    data["learner"] = learner or data.get("learner") or learner_name()
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in data["learner"])
    target = Path(destination) if destination is not None else Path(f"quiz-results-{safe}.json")
    if target.is_dir() or not target.suffix:  # a folder, existing or to be made
        target = target / f"quiz-results-{safe}.json"
    write_json(target, data)
    return target


@dataclass
class Progress:
    attempts: int = 0
    correct: bool = False
    revealed: bool = False
    hints: int = 0  # how many hints have been shown
    answer: Any = None  # the last graded answer, as recorded
    status: str = ""  # the last verdict and its feedback, shown again after a restart
    feedback: str = ""
    details: list[str] = field(default_factory=list)
    timestamp: str | None = None


def merge_progress(base: Progress, mine: Progress, theirs: Progress) -> Progress:
    """One question's progress when another kernel saved it too (``base``: what this kernel
    last read or wrote; ``theirs``: the file now). Every attempt and hint in either counts."""
    changed_here = (mine.attempts, mine.hints, mine.revealed) != (base.attempts, base.hints,
                                                                   base.revealed)
    latest = mine if changed_here and (mine.correct or not theirs.correct) else theirs
    # max(): a file set aside and started afresh must not erase this kernel's own attempts.
    attempts = max(mine.attempts, theirs.attempts + mine.attempts - base.attempts)
    return replace(latest, attempts=attempts, hints=max(mine.hints, theirs.hints),
                   correct=mine.correct or theirs.correct,
                   revealed=mine.revealed or theirs.revealed)


@dataclass(frozen=True)
class Score:
    points: float
    max_points: float
    correct: int
    answered: int
    total: int

    def __str__(self) -> str:
        return (f"Score: {self.points:g} / {self.max_points:g} · {self.answered} of "
                f"{self.total} questions answered")

    _repr_pretty_ = Feedback._repr_pretty_


def answer_key_hash(question: Question) -> str:
    text = json.dumps({"type": question.kind, **question.answer_key()}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class QuizSession:
    def __init__(self, bank: Bank, store: ResultsStore):
        self.bank, self.store, quizzes = bank, store, store.read()["quizzes"]
        records = [(record.get("timestamp") or "", key, record)
                   for quiz_id in (*bank.previous_ids, bank.id)  # old ids too; the latest wins
                   for key, record in quizzes.get(quiz_id, {}).get("questions", {}).items()]
        saved = {key: record for _, key, record in sorted(records, key=lambda r: r[0])}
        self.progress = {q.id: self._restore(q, saved.get(q.id, {})) for q in bank.questions}
        # The progress as this kernel last read or wrote it: what other kernels changed since.
        self.synced = {key: replace(state) for key, state in self.progress.items()}

    def _restore(self, question: Question, record: dict) -> Progress:
        if record.get("key") != answer_key_hash(question):  # the bank changed: start afresh
            return Progress()
        return Progress(**{f.name: record[f.name] for f in fields(Progress) if f.name in record})

    def attempts_left(self, question: Question) -> int | None:
        if question.max_attempts is None:
            return None
        return max(0, question.max_attempts - self.progress[question.id].attempts)

    def is_closed(self, question: Question) -> bool:
        state = self.progress[question.id]
        return state.correct or state.revealed or self.attempts_left(question) == 0

    def _closed(self, question: Question, status: str = "closed") -> Feedback:
        state = self.progress[question.id]
        message = ("You have already answered this question correctly." if state.correct else
                   f"The answer was shown: {question.solution()}" if state.revealed else
                   "No attempts left on this question: show the answer to see it.")
        return Feedback(status, message, question_id=question.id, attempts=state.attempts)

    def submit(self, question_id: str, answer: Any) -> Feedback:
        question, state = self.bank.question(question_id), self.progress[question_id]
        if self.is_closed(question):
            return self._closed(question)
        grade = question.grade(answer)
        if grade.status == INVALID:  # an answer that cannot be read costs no attempt
            return replace(grade, question_id=question_id, attempts=state.attempts)
        state.attempts += 1
        state.correct, state.answer, state.timestamp = grade.correct, grade.record, now()
        details, message, left = grade.details, grade.message, self.attempts_left(question)
        if grade.correct and question.explanation:
            details += (question.explanation,)
        if grade.status == WRONG and left is not None:
            message += (f" {left} attempt{'s' if left != 1 else ''} left." if left else
                        " No attempts left: you can now show the answer.")
        if grade.status == WRONG and left and state.hints < len(question.hints):
            message += " A hint is available."
        return self._record(question, grade.status, message, details)

    def reveal(self, question_id: str) -> Feedback:
        question, state = self.bank.question(question_id), self.progress[question_id]
        if state.revealed or state.correct:
            return self._closed(question, "revealed" if state.revealed else "closed")
        left = self.attempts_left(question)
        if left != 0:
            why = ("this question has unlimited attempts; its solution is in the lesson"
                   if left is None else f"try {left} more time{'s' if left != 1 else ''} first")
            return Feedback("closed" if left is None else INVALID, f"The answer is not shown "
                            f"yet: {why}.", question_id=question_id, attempts=state.attempts)
        state.revealed = True
        details = (question.explanation,) if question.explanation else ()
        return self._record(question, "revealed", f"The answer: {question.solution()}", details)

    def next_hint(self, question_id: str) -> str | None:
        """The next hint not yet shown (and count it), or None when there is none left."""
        question, state = self.bank.question(question_id), self.progress[question_id]
        if state.hints >= len(question.hints):
            return None
        state.hints += 1
        self.save()
        return question.hints[state.hints - 1]

    def _record(self, question: Question, status: str, message: str,
                details: tuple[str, ...]) -> Feedback:
        """Keep the verdict (it is shown again after a restart), save, and return it."""
        state = self.progress[question.id]
        state.status, state.feedback, state.details = status, message, list(details)
        self.save()
        return Feedback(status, message, details, question_id=question.id,
                        attempts=state.attempts)

    def score(self) -> Score:
        questions, progress = self.bank.questions, self.progress
        return Score(sum(q.points for q in questions if progress[q.id].correct),
                     sum(q.points for q in questions),
                     sum(progress[q.id].correct for q in questions),
                     sum(progress[q.id].attempts > 0 for q in questions), len(questions))

    def save(self) -> bool:
        """Merge what other kernels saved, and write, under the lock. False if it failed."""
        in_file = {}

        def merged(stored: dict | None) -> dict:
            saved = (stored or {}).get("questions", {})
            for question in self.bank.questions:
                theirs = self._restore(question, saved.get(question.id, {}))
                in_file[question.id] = theirs
                self.progress[question.id] = merge_progress(
                    self.synced[question.id], self.progress[question.id], theirs)
            score = self.score()
            return {"title": self.bank.title, "score": score.points,
                    "max_score": score.max_points, "answered": score.answered,
                    "questions_total": score.total, "updated": now(),
                    "questions": {q.id: {**asdict(self.progress[q.id]), "points": q.points,
                                         "key": answer_key_hash(q)} for q in self.bank.questions}}

        saved = self.store.update_quiz(self.bank.id, merged)
        if saved:
            self.synced = {key: replace(state) for key, state in self.progress.items()}
        elif in_file:  # merged, not written: the file still holds theirs
            self.synced = in_file
        return saved
