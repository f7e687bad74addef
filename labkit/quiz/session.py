"""One learner working through one quiz: attempts, hints, revealing, score, saving (lesson 00).

An answer that cannot be read (``invalid``) costs no attempt; a question closes when answered
correctly, revealed, or out of attempts; then the answer can be shown, and scores nothing.
Questions with unlimited attempts (code exercises) are never revealed: their solution is in the
lesson. A quiz open in several kernels merges what the others saved, so no attempt is lost.
"""

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from labkit.quiz.bank import Bank
from labkit.quiz.grading import INVALID, WRONG, Feedback, Question
from labkit.quiz.store import ResultsStore, now


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
        self.bank, self.store, saved = bank, store, {}
        for quiz_id in (*bank.previous_ids, bank.id):  # answers saved under earlier ids count
            for key, record in store.quiz(quiz_id).get("questions", {}).items():
                if str(record.get("timestamp") or "") >= str(saved.get(key, {}).get("timestamp")
                                                             or ""):  # the latest answer wins
                    saved[key] = record
        self.progress = {q.id: self._restore(q, saved.get(q.id, {})) for q in bank.questions}
        # The progress as this kernel last read or wrote it: what other kernels changed since.
        self.synced = {key: replace(state) for key, state in self.progress.items()}

    def _restore(self, question: Question, record: dict) -> Progress:
        if record.get("key") != answer_key_hash(question):  # the bank changed: start afresh
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

    def attempts_left(self, question: Question) -> int | None:
        if question.max_attempts is None:
            return None
        return max(0, question.max_attempts - self.progress[question.id].attempts)

    def is_closed(self, question: Question) -> bool:
        state = self.progress[question.id]
        return state.correct or state.revealed or self.attempts_left(question) == 0

    def can_reveal(self, question: Question) -> bool:
        state = self.progress[question.id]
        return not state.revealed and not state.correct and self.attempts_left(question) == 0

    def _closed(self, question: Question, status: str = "closed") -> Feedback:
        state = self.progress[question.id]
        message = ("You have already answered this question correctly." if state.correct else
                   f"The answer was shown: {question.solution()}" if state.revealed else
                   "No attempts left on this question: show the answer to see it.")
        return self._feedback(question, status, message)

    def submit(self, question_id: str, answer: Any) -> Feedback:
        question = self.bank.question(question_id)
        state = self.progress[question_id]
        if self.is_closed(question):
            return self._closed(question)
        grade = question.grade(answer)
        if grade.status == INVALID:
            return self._feedback(question, INVALID, grade.message)  # no attempt used
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
        question = self.bank.question(question_id)
        state = self.progress[question_id]
        if state.revealed or state.correct:
            return self._closed(question, "revealed" if state.revealed else "closed")
        if not self.can_reveal(question):
            left = self.attempts_left(question)
            why = ("this question has unlimited attempts; its solution is in the lesson"
                   if left is None else f"try {left} more time{'s' if left != 1 else ''} first")
            return self._feedback(question, "closed" if left is None else INVALID,
                                  f"The answer is not shown yet: {why}.")
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

    def _feedback(self, question: Question, status: str, message: str,
                  details: tuple[str, ...] = ()) -> Feedback:
        return Feedback(status, message, details, question_id=question.id,
                        attempts=self.progress[question.id].attempts)

    def _record(self, question: Question, status: str, message: str,
                details: tuple[str, ...]) -> Feedback:
        state = self.progress[question.id]
        state.status, state.feedback, state.details = status, message, list(details)
        self.save()
        return self._feedback(question, status, message, details)

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
