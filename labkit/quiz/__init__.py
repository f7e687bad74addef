"""Quizzes, code exercises, flashcards and a glossary, graded in the kernel and saved (lesson 00).

    from labkit.quiz import Quiz
    quiz = Quiz.from_file("quizzes/00_start_here.yaml")
    quiz                                  # widgets in Jupyter; readable text elsewhere
    quiz.answer("smoke", "b")             # the same grading, from code

Widgets are imported when ``Quiz``, ``Flashcards`` or ``Glossary`` is first used.
"""

from labkit.quiz.bank import BankError, load_bank
from labkit.quiz.store import export_results

__all__ = ["Quiz", "Flashcards", "Glossary", "BankError", "load_bank", "export_results"]


def __getattr__(name: str):
    if name in ("Quiz", "Flashcards", "Glossary"):
        from labkit.quiz import quiz
        return getattr(quiz, name)
    raise AttributeError(f"module 'labkit.quiz' has no attribute {name!r}")
