"""Quiz banks: data files beside the notebooks, read safely and checked field by field.

A bank is YAML (read with ``yaml.safe_load``: no Python objects, no code) or JSON::

    id: 00_start_here              # names the quiz in results files and gradebooks
    title: First quiz
    previous_ids: [00_intro]       # optional: ids it had before (answers saved there count)
    max_attempts: 3                # default for every question (a question may override it)
    questions:
      - id: smoke                  # unique in the bank; letters, digits, _ . -
        type: single               # single | multiple | numeric | text | order | code
        prompt: What does `SMOKE_TEST = True` change?
        choices:                   # single and multiple
          - {id: a, text: ..., correct: true, explanation: ...}
        hints: [...]
        explanation: ...           # shown once answered correctly or revealed
      - {id: n, type: numeric, prompt: ..., answer: 2, tolerance: 0.05, unit: GFLOP,
         units: {MFLOP: 0.001}, mistakes: [{answer: 1, feedback: ...}]}
      - {id: t, type: text, prompt: ..., answer: parameters, accept: [...], mistakes: [...]}
      - {id: o, type: order, prompt: ..., items: [{id: x, text: ...}, ...]}   # correct order
      - {id: e, type: code, prompt: ..., checker: frozen_backbone, options: {num_classes: 3}}

jupyterquiz's JSON (a list of questions) is read too; see ``labkit.quiz.jupyterquiz``.
Every problem in a bank is reported at once, each naming the file, the question and the field.
A bank no answer could pass (``answer: .nan``, an empty text answer) or any answer would
(``tolerance: .inf``) is refused, and so are YAML aliases (``*name``): a few of them can
expand a small file into billions of values.
"""

from __future__ import annotations

import difflib
import json
import math
import random
import re
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from labkit.quiz.grading import (Choice, CodeExercise, Mistake, MultipleChoice, Numeric,
                                 Ordering, Question, ShortText, SingleChoice, Target)
from labkit.quiz.parsing import normalise_text

__all__ = ["Bank", "BankError", "Problem", "load_bank", "parse_bank", "read_data_file"]

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
COMMON_FIELDS = {"id", "type", "prompt", "code", "hints", "explanation", "points",
                 "max_attempts"}
TYPE_FIELDS = {
    "single": {"choices"}, "multiple": {"choices"},
    "numeric": {"answer", "tolerance", "relative_tolerance", "range", "unit", "units",
                "mistakes"},
    "text": {"answer", "accept", "mistakes"},
    "order": {"items"},
    "code": {"checker", "options"},
}
BANK_FIELDS = {"id", "title", "description", "max_attempts", "previous_ids", "questions"}


@dataclass(frozen=True)
class Problem:
    question: str  # "'smoke'" or "#3" when the question has no usable id; "" for the bank
    field: str
    message: str
    item: str = "question"  # what ``question`` names: a question, a card, a glossary term

    def __str__(self) -> str:
        where = f"{self.item} {self.question}, " if self.question else ""
        return f"{where}field {self.field!r}: {self.message}"


class BankError(ValueError):
    """A data file (quiz bank, deck, glossary) that cannot be used; ``problems`` lists why."""

    def __init__(self, path: Path | str, problems: list[Problem], what: str = "quiz bank"):
        self.path, self.problems = Path(path), problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s) in this {what}:\n{lines}")


@dataclass(frozen=True)
class Bank:
    id: str
    title: str
    questions: tuple[Question, ...]
    path: Path | None = None
    description: str = ""
    # Ids this bank (or some of its questions) had before, oldest first: answers a learner saved
    # under them are still found after a lesson is renumbered or split.
    previous_ids: tuple[str, ...] = ()

    def question(self, question_id: str) -> Question:
        for question in self.questions:
            if question.id == question_id:
                return question
        raise KeyError(f"quiz {self.id!r} has no question {question_id!r}; its questions are "
                       f"{', '.join(q.id for q in self.questions)}.")


class _Checker:
    """Collects problems for one question; ``need`` returns a value or records why not."""

    def __init__(self, question: str):
        self.question, self.problems = question, []

    def add(self, field: str, message: str) -> None:
        self.problems.append(Problem(self.question, field, message))

    def need(self, raw: dict, field: str, kind: type | tuple, what: str, *, required=True):
        if field not in raw:
            if required:
                self.add(field, f"missing. Fix: add {field}: <{what}>.")
            return None
        value = raw[field]
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            self.add(field, f"must be {what}, got {_show(value)}.")
            return None
        return value


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60


def _show(value: Any) -> str:
    """The type and the start of a value, never the whole: a value built with YAML aliases or
    shared lists may stand for billions of items."""
    try:
        text = _REPR.repr(value)
    except ValueError:  # an int with more digits than Python turns into text
        text = "(too long to show)"
    return f"{type(value).__name__} {text if len(text) < 60 else text[:57] + '...'}"


def _strings(check: _Checker, raw: dict, field: str) -> tuple[str, ...]:
    values = check.need(raw, field, list, "a list of strings", required=False) or []
    if not all(isinstance(v, str) for v in values):
        check.add(field, "must be a list of strings; put quotes around numbers.")
        return ()
    return tuple(values)


def _unknown_fields(check: _Checker, raw: dict, allowed: set[str]) -> None:
    for name in raw:
        if name not in allowed:
            close = difflib.get_close_matches(str(name), sorted(allowed), n=1)
            hint = f" Did you mean {close[0]!r}?" if close else \
                f" Known fields: {', '.join(sorted(allowed))}."
            check.add(str(name), f"unknown field.{hint}")


def _choices(check: _Checker, raw: dict, field: str, *, need_correct: bool) -> tuple[Choice, ...]:
    items = check.need(raw, field, list, "a list of {id, text} entries")
    if items is None:
        return ()
    allowed = {"id", "text", "correct", "explanation"} if need_correct else {"id", "text"}
    choices, letters = [], "abcdefghijklmnopqrstuvwxyz"
    for i, item in enumerate(items):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            check.add(where, f"must be a mapping with id and text, got {_show(item)}.")
            continue
        _unknown_fields(_Prefixed(check, where), item, allowed)
        choice_id = item.get("id", letters[i] if i < 26 else str(i))
        text, correct = item.get("text"), item.get("correct", False)
        if not isinstance(choice_id, str) or not ID_PATTERN.fullmatch(choice_id):
            check.add(f"{where}.id", f"must be a short name (letters, digits, _ . -), got "
                                     f"{_show(choice_id)}.")
        if not isinstance(text, str) or not text.strip():
            check.add(f"{where}.text", f"must be non-empty text, got {_show(text)}.")
        if not isinstance(correct, bool):
            check.add(f"{where}.correct", f"must be true or false, got {_show(correct)}.")
        choices.append(Choice(str(choice_id), str(text), correct is True,
                              str(item.get("explanation", ""))))
    ids = [c.id for c in choices]
    for twice in sorted({i for i in ids if ids.count(i) > 1}):
        check.add(field, f"the id {twice!r} is used twice; ids must be unique.")
    if len(choices) < 2:
        check.add(field, f"needs at least 2 entries, found {len(choices)}.")
    return tuple(choices)


class _Prefixed(_Checker):
    """A view of a checker whose field names sit under ``prefix`` (``choices[2].colour``)."""

    def __init__(self, parent: _Checker, prefix: str):
        self.question, self.problems, self.prefix = parent.question, parent.problems, prefix

    def add(self, field: str, message: str) -> None:
        super().add(f"{self.prefix}.{field}", message)


def _finite_float(value: Any) -> float | None:
    """``value`` (a number) as a float; None for NaN, infinities and ints beyond a float."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _finite(check: _Checker, raw: dict, field: str, what: str, example: str, *,
            required: bool = False) -> float | None:
    """A number that is neither NaN nor infinite (NaN matches no answer; infinity any)."""
    value = check.need(raw, field, (int, float), what, required=required)
    if value is None:
        return None
    number = _finite_float(value)
    if number is None:
        check.add(field, f"must be a finite number, got {_show(value)}: .nan matches no answer "
                         f"and .inf any. Fix: write a plain number, e.g. {field}: {example}.")
        return None
    return number


def _number(check: _Checker, raw: dict, field: str, example: str, *,
            minimum: float | None = None):
    value = _finite(check, raw, field, "a number", example)
    if value is not None and minimum is not None and value < minimum:
        check.add(field, f"must be at least {minimum:g}, got {value:g}. Fix: e.g. "
                         f"{field}: {example}.")
        return None
    return value


def _text_answer(check: _Checker, field: str, text: str, fix: str) -> bool:
    """False (and a problem recorded) when ``text`` could never equal a learner's answer."""
    if normalise_text(text):
        return True
    check.add(field, f"is empty once spaces and punctuation are dropped (got {text!r:.40}), so "
                     f"no answer could ever match it. Fix: {fix}.")
    return False


def _target(check: _Checker, raw: dict, field_prefix: str = "") -> Target | None:
    """An interval from ``answer`` with ``tolerance``/``relative_tolerance``, or ``range``."""
    sub = _Prefixed(check, field_prefix) if field_prefix else check
    if "range" in raw:
        pair = raw["range"]
        if not (isinstance(pair, list) and len(pair) == 2 and all(
                isinstance(v, (int, float)) and not isinstance(v, bool)
                and _finite_float(v) is not None for v in pair) and pair[0] <= pair[1]):
            sub.add("range", f"must be [low, high], two finite numbers with low <= high, got "
                             f"{_show(pair)}. Fix: e.g. range: [0.5, 1.5].")
            return None
        return Target(float(pair[0]), float(pair[1]))
    value = _finite(sub, raw, "answer", "a number (or give range: [low, high])", "2.5",
                    required=True)
    absolute = _number(sub, raw, "tolerance", "0.05", minimum=0) or 0.0
    relative = _number(sub, raw, "relative_tolerance", "0.05", minimum=0) or 0.0
    if relative >= 1:
        sub.add("relative_tolerance", f"must be below 1, got {relative:g}: it is a fraction of "
                                      f"the answer (0.05 is 5%), and 1 or more accepts 0 or "
                                      f"numbers of the wrong sign. Fix: e.g. "
                                      f"relative_tolerance: 0.05.")
        return None
    if value is None:
        return None
    spread = max(absolute, relative * abs(value))
    return Target(value - spread, value + spread)


def _numeric(check: _Checker, raw: dict, common: dict) -> Numeric:
    target = _target(check, raw)
    unit = check.need(raw, "unit", str, "text", required=False) or ""
    units = check.need(raw, "units", dict, "a mapping of unit -> size in `unit`",
                       required=False) or {}
    sizes = {}
    for name, size in units.items():
        number = (_finite_float(size) if isinstance(size, (int, float))
                  and not isinstance(size, bool) else None)
        if number is not None and number > 0:
            sizes[name] = number
        else:
            check.add(f"units.{name}", f"must be a positive finite number (its size in "
                                       f"{unit or 'unit'}), got {_show(size)}. Fix: e.g. "
                                       f"{name}: 0.001.")
    if units and not unit:
        check.add("units", "needs `unit` too: the sizes are given in that unit.")
    mistakes = []
    for i, item in enumerate(check.need(raw, "mistakes", list, "a list", required=False) or []):
        where = f"mistakes[{i}]"
        if not isinstance(item, dict):
            check.add(where, f"must be a mapping with answer and feedback, got {_show(item)}.")
            continue
        _unknown_fields(_Prefixed(check, where), item,
                        {"answer", "tolerance", "relative_tolerance", "range", "feedback"})
        wrong = _target(check, item, where)
        feedback = _Prefixed(check, where).need(item, "feedback", str, "text")
        if wrong and feedback:
            mistakes.append(Mistake(feedback, target=wrong))
    return Numeric(**common, targets=(target,) if target else (), unit=unit,
                   units=sizes, mistakes=tuple(mistakes))


def _text(check: _Checker, raw: dict, common: dict) -> ShortText:
    answer = check.need(raw, "answer", str, "text (put quotes around numbers)")
    if answer is not None:
        _text_answer(check, "answer", answer, "write the expected answer in words, e.g. "
                                              "answer: ResNet")
    answers = (answer or "", *_strings(check, raw, "accept"))
    for other in answers[1:]:
        _text_answer(check, "accept", other, "remove it, or write the other spelling to "
                                             "accept in words")
    mistakes = []
    for i, item in enumerate(check.need(raw, "mistakes", list, "a list", required=False) or []):
        sub = _Prefixed(check, f"mistakes[{i}]")
        if not isinstance(item, dict):
            check.add(f"mistakes[{i}]", f"must be a mapping with answer and feedback, got "
                                        f"{_show(item)}.")
            continue
        _unknown_fields(sub, item, {"answer", "feedback"})
        said, feedback = sub.need(item, "answer", str, "text"), sub.need(item, "feedback", str,
                                                                          "text")
        readable = said is not None and _text_answer(
            sub, "answer", said, "write the wrong answer this feedback is for")
        if readable and feedback:
            mistakes.append(Mistake(feedback, text=normalise_text(said)))
    return ShortText(**common, answers=answers, mistakes=tuple(mistakes))


def _ordering(check: _Checker, raw: dict, common: dict) -> Ordering:
    items = _choices(check, raw, "items", need_correct=False)
    ids = [c.id for c in items]
    shown = ids[:]
    # Shown shuffled, the same way every time (seeded by the question id); never already solved.
    random.Random(common["id"]).shuffle(shown)
    if shown == ids and len(ids) > 1:
        shown = ids[1:] + ids[:1]
    return Ordering(**common, items=items, display_order=tuple(shown))


def _code(check: _Checker, raw: dict, common: dict, registered: set[str]) -> CodeExercise:
    name = check.need(raw, "checker", str, "the name of a registered checker function") or ""
    if name and name not in registered:
        check.add("checker", f"no checker is registered as {name!r} (registered: "
                             f"{', '.join(sorted(registered)) or 'none'}). Fix: define it with "
                             f"@register_checker({name!r}) in Python before loading the bank.")
    options = check.need(raw, "options", dict, "a mapping of keyword arguments",
                         required=False) or {}
    common = {**common, "max_attempts": common["max_attempts"] if "max_attempts" in raw else None}
    return CodeExercise(**common, checker=name, options=options)


def _common(check: _Checker, raw: dict, default_attempts: int | None) -> dict:
    attempts = raw.get("max_attempts", default_attempts)
    if attempts is not None and (not isinstance(attempts, int) or isinstance(attempts, bool)
                                 or attempts < 1):
        check.add("max_attempts", f"must be a whole number of at least 1 (or null for "
                                  f"unlimited), got {_show(attempts)}.")
        attempts = default_attempts
    points = _number(check, raw, "points", "1", minimum=0)
    return {"id": str(raw.get("id", "")),
            "prompt": check.need(raw, "prompt", str, "the question text") or "",
            "code": check.need(raw, "code", str, "text", required=False) or "",
            "hints": _strings(check, raw, "hints"),
            "explanation": check.need(raw, "explanation", str, "text", required=False) or "",
            "points": float(points if points is not None else 1.0),
            "max_attempts": attempts}


def _question(raw: Any, index: int, default_attempts: int | None,
              registered: set[str]) -> tuple[Question | None, list[Problem]]:
    raw_id = raw.get("id") if isinstance(raw, dict) else None
    usable = isinstance(raw_id, str) and ID_PATTERN.fullmatch(raw_id)
    check = _Checker(repr(raw_id) if usable else f"#{index + 1}")
    if not isinstance(raw, dict):
        check.add("(question)", f"must be a mapping of fields, got {_show(raw)}.")
        return None, check.problems
    if not usable:
        check.add("id", f"must be a short name (letters, digits, _ . -), got {_show(raw_id)}."
                  if "id" in raw else "missing. Fix: add id: <short name>, unique in the bank.")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in TYPE_FIELDS:
        check.add("type", f"must be one of {', '.join(TYPE_FIELDS)}, got {_show(kind)}.")
        return None, check.problems
    _unknown_fields(check, raw, COMMON_FIELDS | TYPE_FIELDS[kind])
    common = _common(check, raw, default_attempts)
    if kind in ("single", "multiple"):
        choices = _choices(check, raw, "choices", need_correct=True)
        right = sum(c.correct for c in choices)
        if choices and right == 0:
            check.add("choices", "no choice has correct: true. Fix: mark the right one(s).")
        question = (SingleChoice if kind == "single" else MultipleChoice)(**common,
                                                                          choices=choices)
    elif kind == "numeric":
        question = _numeric(check, raw, common)
    elif kind == "text":
        question = _text(check, raw, common)
    elif kind == "order":
        question = _ordering(check, raw, common)
    else:
        question = _code(check, raw, common, registered)
    return (None if check.problems else question), check.problems


def parse_bank(data: Any, *, path: Path | str = "<bank>", default_id: str = "") -> Bank:
    """A validated ``Bank`` from already-parsed data; raises ``BankError`` listing every problem."""
    from labkit.quiz.checkers import registered_checkers
    from labkit.quiz.jupyterquiz import is_jupyterquiz, from_jupyterquiz

    if is_jupyterquiz(data):
        data = from_jupyterquiz(data, bank_id=default_id, path=path)
    check = _Checker("")
    if not isinstance(data, dict):
        raise BankError(path, [Problem("", "(file)", f"must hold a mapping with id, title and "
                                                     f"questions, got {_show(data)}.")])
    _unknown_fields(check, data, BANK_FIELDS)
    bank_id = data.get("id", default_id)
    if not isinstance(bank_id, str) or not ID_PATTERN.fullmatch(bank_id):
        check.add("id", f"the bank needs an id (letters, digits, _ . -), got {_show(bank_id)}.")
    title = check.need(data, "title", str, "text", required=False) or str(bank_id)
    description = check.need(data, "description", str, "text", required=False) or ""
    previous = data.get("previous_ids", [])
    if not isinstance(previous, list) or not all(
            isinstance(old, str) and ID_PATTERN.fullmatch(old) for old in previous):
        check.add("previous_ids", f"must be a list of earlier bank ids, got {_show(previous)}.")
        previous = []
    attempts = data.get("max_attempts", 3)
    if attempts is not None and (not isinstance(attempts, int) or isinstance(attempts, bool)
                                 or attempts < 1):
        check.add("max_attempts", f"must be a whole number of at least 1 (or null for "
                                  f"unlimited), got {_show(attempts)}.")
        attempts = 3
    raw_questions = check.need(data, "questions", list, "a list of questions") or []
    if not raw_questions and "questions" in data:
        check.add("questions", "is empty. Fix: add at least one question.")
    questions, problems = [], list(check.problems)
    registered = set(registered_checkers())
    for i, raw in enumerate(raw_questions):
        question, found = _question(raw, i, attempts, registered)
        problems += found
        if question is not None:
            questions.append(question)
    ids = [q.get("id") for q in raw_questions if isinstance(q, dict)]
    for twice in sorted({i for i in ids if isinstance(i, str) and ids.count(i) > 1}):
        problems.append(Problem(repr(twice), "id", "is used by more than one question; "
                                                   "question ids must be unique in a bank."))
    if problems:
        raise BankError(path, problems)
    return Bank(bank_id, title, tuple(questions), Path(path), description,
                tuple(previous))


class _AliasRefused(yaml.YAMLError):
    def __init__(self, anchor: str, mark: Any):
        self.anchor, self.mark = anchor, mark


class _SafeLoader(yaml.SafeLoader):
    """``yaml.safe_load``'s loader (plain data only, never Python objects) that also refuses
    aliases: nine lines of ``*name`` can stand for a billion values (a "billion laughs" file)
    that any later walk over the data, even printing it, would expand."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _AliasRefused(event.anchor, event.start_mark)
        return super().compose_node(parent, index)


def _parse(path: Path, text: str) -> Any:
    """The data in ``text``; a message for the learner (ValueError) when it cannot be read."""
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.load(text, Loader=_SafeLoader)
    except json.JSONDecodeError as error:
        where = f"line {error.lineno}, column {error.colno}"
        raise ValueError(f"is not valid JSON: {error.msg} at {where}.") from None
    except _AliasRefused as error:
        raise ValueError(
            f"uses the YAML alias *{error.anchor} at line {error.mark.line + 1}, column "
            f"{error.mark.column + 1}: aliases are refused, because a few of them can make a "
            f"small file stand for billions of values. Fix: write the value out in full "
            f"where *{error.anchor} stands.") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        reason = getattr(error, "problem", None) or str(error)
        raise ValueError(f"is not valid YAML: {reason}{where}.") from None
    except RecursionError:
        raise ValueError("is nested too deeply (lists or mappings inside one another hundreds "
                         "of times). Fix: a quiz file needs only a few levels; remove the "
                         "extra brackets.") from None
    except ValueError as error:  # an int too long to convert, an impossible date
        why = ("holds a number with thousands of digits" if "digits" in str(error) else
               f"holds a value that cannot be read ({error})")
        raise ValueError(f"{why}. Fix: write plain numbers and dates, or put quotes around "
                         f"the value to make it text.") from None


def read_data_file(path: Path | str, what: str = "quiz bank") -> Any:
    """The parsed content of a YAML or JSON data file; syntax errors become ``BankError``
    (``what`` names the kind of file in the message: quiz bank, glossary, deck)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no quiz data file at {path} (looked from {Path.cwd()}). Fix: check the name, or "
            f"give the path from the notebook's folder, e.g. quizzes/{path.name}.") from None
    except IsADirectoryError:
        raise BankError(path, [Problem("", "(file)", f"is a folder, not a {what} file. Fix: "
                                                     f"name the file, e.g. {path}/NAME.yaml.")],
                        what) from None
    except UnicodeDecodeError as error:
        line = path.read_bytes()[:error.start].count(b"\n") + 1
        raise BankError(path, [Problem("", "(file)", f"is not UTF-8 text: byte "
                                       f"{error.object[error.start]:#04x} on line {line}. Fix: "
                                       "save the file again with the encoding UTF-8.")],
                        what) from None
    try:
        return _parse(path, text)
    except ValueError as error:
        raise BankError(path, [Problem("", "(file)", str(error))], what) from None


def load_bank(path: Path | str) -> Bank:
    """Read and validate a quiz bank (YAML, JSON, or jupyterquiz JSON)."""
    path = Path(path)
    return parse_bank(read_data_file(path), path=path, default_id=path.stem.split(".")[0])
