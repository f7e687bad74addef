"""Read jupyterquiz's JSON question lists, so banks written for it work here unchanged.

jupyterquiz (github.com/jmshea/jupyterquiz) stores a quiz as a JSON list of questions::

    [{"question": "...", "type": "multiple_choice" | "many_choice" | "numeric" | "string",
      "answers": [{"answer": "...", "correct": true, "feedback": "..."}, ...]}, ...]

This module translates such a list into labkit's bank format, which ``labkit.quiz.bank`` then
validates like any other. The translation:

- multiple_choice -> single, many_choice -> multiple; ``feedback`` becomes the explanation;
  an answer given as ``code`` is shown in backticks;
- numeric: correct ``value``/``range`` answers become accepted targets (``precision``
  significant digits become a tolerance; ranges include both ends), incorrect ones become
  mistakes with their feedback, and the ``default`` feedback becomes a hint;
- string: correct answers become accepted variants, incorrect ones mistakes (labkit always
  ignores case, so ``match_case`` and ``fuzzy_threshold`` are not used);
- question ids are q1, q2, ... in file order; the bank id is the file name.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["is_jupyterquiz", "from_jupyterquiz"]

TYPES = {"multiple_choice": "single", "many_choice": "multiple", "numeric": "numeric",
         "string": "text"}


def is_jupyterquiz(data: Any) -> bool:
    return isinstance(data, list) and bool(data) and all(
        isinstance(item, dict) and "question" in item for item in data)


def _problem(path, index: int, field: str, message: str):
    from labkit.quiz.bank import BankError, Problem
    return BankError(path, [Problem(f"#{index + 1} (jupyterquiz)", field, message)])


def _choices(answers: list[dict]) -> list[dict]:
    choices = []
    for i, answer in enumerate(answers):
        text = answer.get("answer") or (f"`{answer['code']}`" if answer.get("code") else "")
        choice = {"id": "abcdefghijklmnopqrstuvwxyz"[i % 26] + ("" if i < 26 else str(i)),
                  "text": text, "correct": answer.get("correct", False)}
        if answer.get("feedback"):
            choice["explanation"] = answer["feedback"]
        choices.append(choice)
    return choices


def _precision_tolerance(value: float, digits: int) -> float:
    """Half a unit in the last of ``digits`` significant digits of ``value``."""
    if value == 0:
        return 0.5 * 10.0 ** (1 - digits)
    return 0.5 * 10.0 ** (math.floor(math.log10(abs(value))) + 1 - digits)


def _numeric(item: dict, question: dict) -> dict:
    digits = item.get("precision")
    targets, mistakes, hints = [], [], []
    for answer in item["answers"]:
        kind = answer.get("type")
        if kind == "default":
            hints += [answer["feedback"]] if answer.get("feedback") else []
            continue
        if kind == "range":
            entry = {"range": list(answer.get("range", []))}
        else:
            entry = {"answer": answer.get("value")}
            if isinstance(digits, int) and isinstance(entry["answer"], (int, float)):
                entry["tolerance"] = _precision_tolerance(entry["answer"], digits)
        if answer.get("correct"):
            targets.append(entry)
        else:
            mistakes.append({**entry, "feedback": answer.get("feedback", "")})
    question.update(targets[0] if targets else {})
    if mistakes:
        question["mistakes"] = mistakes
    if hints:
        question["hints"] = hints
    return question


def _text(item: dict, question: dict) -> dict:
    right = [a.get("answer") for a in item["answers"] if a.get("correct")]
    wrong = [{"answer": a.get("answer"), "feedback": a.get("feedback", "")}
             for a in item["answers"] if not a.get("correct") and a.get("type") != "default"]
    question["answer"] = right[0] if right else None
    if right[1:]:
        question["accept"] = right[1:]
    if wrong:
        question["mistakes"] = wrong
    return question


def from_jupyterquiz(items: list[dict], *, bank_id: str, path: Path | str) -> dict:
    """labkit bank data (not yet validated) for a jupyterquiz question list."""
    questions = []
    for index, item in enumerate(items):
        kind = TYPES.get(item.get("type"))
        if kind is None:
            raise _problem(path, index, "type", f"jupyterquiz type {item.get('type')!r} is not "
                                                f"supported; supported: {', '.join(TYPES)}.")
        answers = item.get("answers")
        if not isinstance(answers, list) or not all(isinstance(a, dict) for a in answers):
            raise _problem(path, index, "answers", "must be a list of answer objects.")
        question = {"id": f"q{index + 1}", "type": kind, "prompt": item["question"]}
        if item.get("code"):
            question["code"] = item["code"]
        if kind in ("single", "multiple"):
            question["choices"] = _choices(answers)
        elif kind == "numeric":
            question = _numeric(item, question)
        else:
            question = _text(item, question)
        questions.append(question)
    return {"id": bank_id, "title": bank_id, "questions": questions}
