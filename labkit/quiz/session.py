"""One learner working through one quiz: attempts, hints, revealing, score, saving.

The rules, in pure Python (the widget and the text form only draw what these methods return):
an answer that cannot be read (``invalid``) costs no attempt; a question closes when answered
correctly, revealed, or out of attempts; once the attempts are used the answer can be shown,
and a revealed question scores nothing. Questions with unlimited attempts (code exercises by
default) are never revealed: their solution is in the lesson. A quiz open in several kernels
merges, under the results file's lock, what the others saved (``merge_progress``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any

from labkit.quiz.bank import Bank
from labkit.quiz.grading import INVALID, WRONG, Question
from labkit.quiz.store import ResultsStore, now

CLOSED, REVEALED = "closed", "revealed"


@dataclass
class Progress:
    attempts: int = 0
    correct: bool = False
    revealed: bool = False
    hints: int = 0  # how many hints have been shown
    answer: Any = None  # the last graded answer, as recorded
    status: str = ""  # the last verdict and its feedback, to show again after a restart
    feedback: str = ""
    details: list[str] = field(default_factory=list)
    timestamp: str | None = None


def merge_progress(base: Progress, mine: Progress, theirs: Progress) -> Progress:
    """One question's progress when another kernel saved it too: ``base`` is what this kernel
    last read or wrote, ``mine`` its progress now, ``theirs`` what the file holds now.
    Every attempt and hint made in either kernel counts; correct or revealed in either stays so.
    """
    changed_here = (mine.attempts, mine.hints, mine.revealed) != (base.attempts, base.hints,
                                                                   base.revealed)
    latest = mine if changed_here and (mine.correct or not theirs.correct) else theirs
    # max(): a file set aside and started afresh must not erase this kernel's own attempts.
    attempts = max(mine.attempts, theirs.attempts + mine.attempts - base.attempts)
    return replace(latest, attempts=attempts, hints=max(mine.hints, theirs.hints),
                   correct=mine.correct or theirs.correct,
                   revealed=mine.revealed or theirs.revealed)


@dataclass(frozen=True)
class Feedback:
    question_id: str
    status: str  # correct, wrong, invalid, closed or revealed
    message: str
    details: tuple[str, ...] = ()
    attempts: int = 0
    max_attempts: int | None = None

    def __str__(self) -> str:
        lines = [f"[{self.question_id}] {self.message}", *(f"  {d}" for d in self.details)]
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


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

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


def answer_key_hash(question: Question) -> str:
    text = json.dumps({"type": question.kind, **question.answer_key()}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass
class QuizSession:
    bank: Bank
    store: ResultsStore
    progress: dict[str, Progress] = field(default_factory=dict)
    # The progress as this kernel last read or wrote it: what other kernels changed since.
    synced: dict[str, Progress] = field(default_factory=dict, repr=False)
    _in_file: dict[str, Progress] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        saved: dict = {}
        for quiz_id in (*self.bank.previous_ids, self.bank.id):
            for key, record in self.store.quiz(quiz_id).get("questions", {}).items():
                if str(record.get("timestamp") or "") >= str(saved.get(key, {}).get("timestamp")
                                                             or ""):  # the latest answer wins
                    saved[key] = record
        for question in self.bank.questions:
            self.progress[question.id] = self._restore(question, saved.get(question.id, {}))
        self.synced = {key: replace(state) for key, state in self.progress.items()}

    def _restore(self, question: Question, record: dict) -> Progress:
        # Progress saved against another answer key (the bank changed) no longer applies.
        if record.get("key") != answer_key_hash(question):
            return Progress()
        try:
            return Progress(
                attempts=int(record.get("attempts", 0)), correct=record.get("correct") is True,
                revealed=record.get("revealed") is True, hints=int(record.get("hints", 0)),
                answer=record.get("answer"), status=str(record.get("status", "")),
                feedback=str(record.get("feedback", "")),
                details=[str(d) for d in record.get("details", [])],
                timestamp=record.get("timestamp"))
        except (TypeError, ValueError):
            self.store.tell(f"The saved progress on question {question.id!r} of "
                            f"{self.bank.id!r} was unreadable, so it starts afresh.")
            return Progress()

    # --- the rules --------------------------------------------------------------------------

    def attempts_left(self, question: Question) -> int | None:
        if question.max_attempts is None:
            return None
        return max(0, question.max_attempts - self.progress[question.id].attempts)

    def is_closed(self, question: Question) -> bool:
        state = self.progress[question.id]
        return state.correct or state.revealed or self.attempts_left(question) == 0

    def can_reveal(self, question: Question) -> bool:
        state = self.progress[question.id]
        return (question.max_attempts is not None and not state.revealed
                and not state.correct and self.attempts_left(question) == 0)

    def _closed_message(self, question: Question) -> str:
        state = self.progress[question.id]
        if state.correct:
            return "You have already answered this question correctly."
        if state.revealed:
            return f"The answer was shown: {question.solution()}"
        return "No attempts left on this question: show the answer to see it."

    # --- actions ----------------------------------------------------------------------------

    def submit(self, question_id: str, answer: Any) -> Feedback:
        question = self.bank.question(question_id)
        state = self.progress[question_id]
        if self.is_closed(question):
            return self._feedback(question, CLOSED, self._closed_message(question))
        grade = question.grade(answer)
        if grade.status == INVALID:
            return self._feedback(question, INVALID, grade.message)  # no attempt used
        state.attempts += 1
        state.correct, state.answer, state.timestamp = grade.correct, grade.record, now()
        details = grade.details
        if grade.correct and question.explanation:
            details += (question.explanation,)
        message = grade.message
        left = self.attempts_left(question)
        if grade.status == WRONG and left is not None:
            message += (f" {left} attempt{'s' if left != 1 else ''} left." if left else
                        " No attempts left: you can now show the answer.")
        if grade.status == WRONG and left and state.hints < len(question.hints):
            message += " A hint is available."
        return self._record(question, grade.status, message, details)

    def reveal(self, question_id: str) -> Feedback:
        question = self.bank.question(question_id)
        state = self.progress[question_id]
        if state.revealed or state.correct:
            return self._feedback(question, REVEALED if state.revealed else CLOSED,
                                  self._closed_message(question))
        if not self.can_reveal(question):
            left = self.attempts_left(question)
            why = ("this question has unlimited attempts; its solution is in the lesson"
                   if left is None else f"try {left} more time{'s' if left != 1 else ''} first")
            return self._feedback(question, CLOSED if left is None else INVALID,
                                  f"The answer is not shown yet: {why}.")
        state.revealed = True
        details = (question.explanation,) if question.explanation else ()
        return self._record(question, REVEALED, f"The answer: {question.solution()}", details)

    def next_hint(self, question_id: str) -> str | None:
        """The next hint not yet shown (and count it), or None when there is none left."""
        question = self.bank.question(question_id)
        state = self.progress[question_id]
        if state.hints >= len(question.hints):
            return None
        state.hints += 1
        self.save()
        return question.hints[state.hints - 1]

    def shown_hints(self, question_id: str) -> tuple[str, ...]:
        return self.bank.question(question_id).hints[:self.progress[question_id].hints]

    def _feedback(self, question: Question, status: str, message: str,
                  details: tuple[str, ...] = ()) -> Feedback:
        return Feedback(question.id, status, message, details,
                        self.progress[question.id].attempts, question.max_attempts)

    def _record(self, question: Question, status: str, message: str,
                details: tuple[str, ...]) -> Feedback:
        feedback = self._feedback(question, status, message, details)
        state = self.progress[question.id]
        state.status, state.feedback, state.details = status, message, list(details)
        self.save()
        return feedback

    # --- score and persistence --------------------------------------------------------------

    def score(self) -> Score:
        questions = self.bank.questions
        points = sum(q.points for q in questions if self.progress[q.id].correct)
        return Score(points, sum(q.points for q in questions),
                     sum(self.progress[q.id].correct for q in questions),
                     sum(self.progress[q.id].attempts > 0 for q in questions), len(questions))

    def entry(self) -> dict:
        """This quiz as the results file stores it (see labkit.quiz.store)."""
        score = self.score()
        questions = {}
        for question in self.bank.questions:
            state = self.progress[question.id]
            questions[question.id] = {
                "answer": state.answer, "correct": state.correct, "attempts": state.attempts,
                "revealed": state.revealed, "hints": state.hints, "timestamp": state.timestamp,
                "points": question.points, "status": state.status, "feedback": state.feedback,
                "details": state.details, "key": answer_key_hash(question)}
        return {"title": self.bank.title, "score": score.points, "max_score": score.max_points,
                "answered": score.answered, "questions_total": score.total, "updated": now(),
                "questions": questions}

    def _merged_entry(self, stored: dict | None) -> dict:
        """This quiz's entry with what other kernels saved merged in (called under the lock)."""
        saved = (stored or {}).get("questions", {})
        self._in_file = {}
        for question in self.bank.questions:
            theirs = self._in_file[question.id] = self._restore(question,
                                                                saved.get(question.id, {}))
            self.progress[question.id] = merge_progress(
                self.synced[question.id], self.progress[question.id], theirs)
        return self.entry()

    def save(self) -> bool:
        self._in_file = None
        saved = self.store.update_quiz(self.bank.id, self._merged_entry)
        if saved:
            self.synced = {key: replace(state) for key, state in self.progress.items()}
        elif self._in_file is not None:  # merged, not written: the file still holds theirs
            self.synced = self._in_file
        return saved
