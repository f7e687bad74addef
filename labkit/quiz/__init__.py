"""Quizzes, code exercises, flashcards and a glossary, graded in the kernel and saved.

In a lesson::

    from labkit.quiz import Quiz
    quiz = Quiz.from_file("quizzes/00_start_here.yaml")
    quiz                                  # widgets in Jupyter; readable text elsewhere
    quiz.answer("smoke", "b")             # the same grading, from code

How it fits together (each module owns one idea):

- ``grading``: question types and their pure grading (no widgets, no files);
- ``bank``: quiz bank files (YAML/JSON, also jupyterquiz's JSON via ``jupyterquiz``),
  validated with errors that name the file, the question and the field;
- ``checkers``: Python functions that grade code exercises, registered by name;
- ``session``: attempts, hints, revealing and the score for one learner;
- ``store``: the learner's results file (atomic writes; a corrupt file is kept and reported);
- ``widgets``: the thin ipywidgets layer, ``plain``: the text shown where widgets cannot be;
- ``cards``: flashcards and the glossary; ``gradebook`` and ``cli``: the instructor's side.
"""

from labkit.quiz.bank import Bank, BankError, load_bank
from labkit.quiz.cards import Flashcards, Glossary
from labkit.quiz.checkers import CheckResult, register_checker
from labkit.quiz.store import default_results_path, export_results
from labkit.quiz.widgets import Quiz

__all__ = ["Quiz", "Flashcards", "Glossary", "Bank", "BankError", "load_bank", "CheckResult",
           "register_checker", "default_results_path", "export_results"]
