"""The quiz as plain text, for places with no widget frontend.

papermill, nbval, a text export or a terminal cannot draw widgets. There a quiz shows this
text instead (it is the ``text/plain`` part of the quiz's display), which lists every question
and the function call that answers it. Nothing waits for input, so execution never blocks.
"""

from __future__ import annotations

import textwrap

from labkit.quiz.grading import CodeExercise, MultipleChoice, Numeric, Ordering, Question, \
    SingleChoice
from labkit.quiz.session import QuizSession
from labkit.quiz.store import RESULTS_ENV

__all__ = ["quiz_text"]

FORMS = {"single": "one choice", "multiple": "choose all that apply", "numeric": "a number",
         "text": "a word or short phrase", "order": "put in order",
         "code": "a code exercise, graded by a checker"}


def _state(session: QuizSession, question: Question) -> str:
    state = session.progress[question.id]
    if state.correct:
        return f"answered correctly ({state.attempts} attempt{'s' if state.attempts != 1 else ''})"
    if state.revealed:
        return "answer shown"
    if not state.attempts:
        return ""
    left = session.attempts_left(question)
    return f"{state.attempts} wrong so far" + (f", {left} left" if left is not None else "")


def _options(question: Question) -> list[str]:
    if isinstance(question, (SingleChoice, MultipleChoice)):
        return [f"{c.id}) {c.text}" for c in question.choices]
    if isinstance(question, Ordering):
        by_id = {c.id: c for c in question.items}
        return [f"{i}) {by_id[i].text}" for i in question.display_order]
    return []


def _question_text(session: QuizSession, question: Question, number: int, name: str) -> str:
    form = FORMS[question.kind]
    if isinstance(question, Numeric) and question.unit:
        form += f", in {question.unit}"
    lines = textwrap.wrap(f"{number}. [{question.id}] {question.prompt} ({form})", width=96,
                          subsequent_indent="   ")
    if question.code:
        lines += ["", *("       " + line for line in question.code.splitlines()), ""]
    lines += [f"     {option}" for option in _options(question)]
    lines.append(f"   -> {question.example_call(name)}")
    state = _state(session, question)
    if state:
        lines.append(f"   ({state})")
    return "\n".join(lines)


def quiz_text(session: QuizSession, *, name: str = "quiz") -> str:
    """Every question of the quiz, how to answer each, the score and where it is saved."""
    bank = session.bank
    helps = []
    if any(q.hints for q in bank.questions):
        helps.append(f"{name}.hint(\"<id>\") gives a hint")
    if any(q.max_attempts is not None for q in bank.questions):
        helps.append(f"{name}.reveal(\"<id>\") shows the answer once your attempts are used")
    header = [
        f"{bank.title} [{bank.id}]: {len(bank.questions)} questions. {session.score()}",
        f"No widgets here: answer in a code cell with {name}.answer(\"<question id>\", <answer>)."
        + (f" {'; '.join(helps)}." if helps else ""),
        f"Answers are saved to {session.store.path} (set {RESULTS_ENV} to change where).",
    ]
    header += [f"Note: {note}" for note in session.store.notes]
    body = [_question_text(session, q, i + 1, name) for i, q in enumerate(bank.questions)]
    if any(isinstance(q, CodeExercise) for q in bank.questions):
        body.append(f"Code exercises: hand your object to its checker, e.g. "
                    f"{name}.answer(\"<id>\", model).")
    return "\n".join(header) + "\n\n" + "\n\n".join(body)
