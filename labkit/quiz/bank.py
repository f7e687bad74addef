"""Quiz banks: YAML or JSON files beside the notebooks, checked with a JSON schema (lesson 00).

    id: 00_start_here              # names the quiz in results files and gradebooks
    title: First quiz
    previous_ids: [00_intro]       # optional: ids it had before (answers saved there count)
    max_attempts: 3                # default for every question (a question may override it)
    checkers: labkit.exercises     # code questions: the module whose CHECKERS table grades them
    questions:
      - id: smoke                  # unique in the bank; letters, digits, _ . -
        type: single               # single | multiple | numeric | text | order | code
        prompt: What does `SMOKE_TEST = True` change?
        choices: [{id: a, text: ..., correct: true, explanation: ...}, ...]  # single, multiple
        hints: [...]
        explanation: ...           # shown once answered correctly or revealed
      - {id: n, type: numeric, prompt: ..., answer: 2, tolerance: 0.05, unit: GFLOP,
         units: {MFLOP: 0.001}, mistakes: [{answer: 1, feedback: ...}]}  # or relative_tolerance
      - {id: t, type: text, prompt: ..., answer: parameters, accept: [...], mistakes: [...]}
      - {id: o, type: order, prompt: ..., items: [{id: x, text: ...}, ...]}   # correct order
      - {id: e, type: code, prompt: ..., checker: vgg_block, options: {num_convs: 2}}

The glossary, ``quizzes/glossary.yaml``, feeds the flashcards and the glossary widget::

    terms:   # lesson: the notebook that teaches the term; aliases and see_also are optional
      - {term: fine-tuning, definition: ..., lesson: 06_fine_tuning, aliases: [finetuning],
         see_also: [feature extraction]}   # see_also: other terms of this glossary

Every problem is reported at once: file, question (or term), field and fix. Refused: a bank no
answer could pass (``answer: .nan``, an empty text answer) or any would (``tolerance: .inf``),
and YAML aliases (``*name``), which can expand a small file into billions of values.
"""

import difflib
import importlib
import json
import random
import reprlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator, ValidationError, validators

from labkit.quiz.grading import (Choice, CodeExercise, Mistake, MultipleChoice, Numeric,
                                 Ordering, Question, ShortText, SingleChoice, Target,
                                 normalise_text)


@dataclass(frozen=True)
class Problem:
    question: str  # "'smoke'", or "#3" for a question without a usable id; "" for the file
    field: str
    message: str
    item: str = "question"  # what ``question`` names: a question or a glossary term

    def __str__(self) -> str:
        where = f"{self.item} {self.question}, " if self.question else ""
        return f"{where}field {self.field!r}: {self.message}"


class BankError(ValueError):
    """A data file (quiz bank, glossary) that cannot be used; ``problems`` lists why."""

    def __init__(self, path: Path | str, problems: list[Problem], what: str = "quiz bank"):
        self.path, self.problems = Path(path), problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{path}: {len(problems)} problem(s) in this {what}:\n{lines}")


@dataclass(frozen=True)
class Bank:
    id: str
    title: str
    questions: tuple[Question, ...]
    previous_ids: tuple[str, ...] = ()  # ids it had before: answers saved under them count

    def question(self, question_id: str) -> Question:
        for question in self.questions:
            if question.id == question_id:
                return question
        raise KeyError(f"quiz {self.id!r} has no question {question_id!r}; its questions are "
                       f"{', '.join(q.id for q in self.questions)}.")


def field(kind: str | list, must: str, fix: str = "", **rules) -> dict:
    """A schema; ``must`` and ``fix`` are ours: they word the message when a value fails."""
    return {"type": kind, "must": must, "fix": fix, **rules}


NAME = field("string", "a short name (letters, digits, _ . -)",
             pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
TEXT = field("string", "text")
TEXTS = field("array", "a list of strings", "put quotes around numbers", items=TEXT)
ATTEMPTS = field(["integer", "null"], "a whole number of at least 1 (or null for unlimited)",
                 "e.g. max_attempts: 3", minimum=1)
ANSWER = field("string", "text", "e.g. answer: ResNet (quotes around numbers)",
               answerable="write the expected answer in words")


def entries(*, correct: bool) -> dict:
    """The schema of ``choices`` (with ``correct``) or of ``items`` to order."""
    entry = {"id": NAME, "text": field("string", "non-empty text", pattern=r"\S")}
    if correct:
        entry |= {"correct": field("boolean", "true or false"), "explanation": TEXT}
    return field("array", "a list of {id, text} entries", minItems=2, unique="id",
                 someCorrect=correct, items=field("object", "a mapping with id and text",
                                                  properties=entry, required=["id", "text"],
                                                  additionalProperties=False))


def mistakes(answer: dict) -> dict:
    return field("array", "a list of {answer, feedback} entries", items=field(
        "object", "a mapping with answer and feedback", additionalProperties=False,
        properties={**answer, "feedback": TEXT}, required=["answer", "feedback"]))


TARGET = {  # a numeric answer, or a known wrong one
    "answer": field("number", "a number", "e.g. answer: 2.5"),
    "tolerance": field("number", "a number of at least 0", "e.g. tolerance: 0.05", minimum=0),
    "relative_tolerance": field("number", "a fraction of the answer, at least 0 and below 1 "
                                "(0.05 is 5%)", "e.g. relative_tolerance: 0.05", minimum=0,
                                exclusiveMaximum=1)}
KINDS = {  # the first field of each kind is required
    "single": {"choices": entries(correct=True)},
    "multiple": {"choices": entries(correct=True)},
    "order": {"items": entries(correct=False)},
    "numeric": {**TARGET, "unit": TEXT, "units": field(
        "object", "a mapping of unit -> its size in `unit`", additionalProperties=field(
            "number", "a positive number (its size in `unit`)", "e.g. MFLOP: 0.001",
            exclusiveMinimum=0)),
                "mistakes": mistakes(TARGET)},
    "text": {"answer": ANSWER, "accept": {**TEXTS, "answerable": "remove it, or write the "
                                          "other spelling in words"},
             "mistakes": mistakes({"answer": {**ANSWER, "answerable": "write the wrong answer "
                                                                      "this feedback is for"}})},
    "code": {"checker": field("string", "the name of a checker function"),
             "options": field("object", "a mapping of keyword arguments")},
}
COMMON = {"id": {}, "type": {}, "prompt": TEXT, "hints": TEXTS, "explanation": TEXT,
          "max_attempts": ATTEMPTS,
          "points": field("number", "a number of at least 0", "e.g. points: 1", minimum=0)}
QUESTION = field(
    "object", "a mapping of fields", required=["id", "type"], properties={
        "id": NAME, "type": field("string", f"one of {', '.join(KINDS)}", enum=list(KINDS))},
    allOf=[{"if": {"required": ["type"], "properties": {"type": {"enum": [kind]}}},
            "then": {"properties": {**COMMON, **fields}, "additionalProperties": False,
                     "required": ["prompt", next(iter(fields))], "needs": {"units": "unit"}}}
           for kind, fields in KINDS.items()])
BANK = field("object", "a mapping with id, title and questions", required=["id", "questions"],
             additionalProperties=False, properties={
                 "id": {**NAME, "must": "an id (letters, digits, _ . -)"}, "title": TEXT,
                 "max_attempts": ATTEMPTS,
                 "previous_ids": field("array", "a list of earlier bank ids", items=NAME),
                 "checkers": field("string", "the name of a Python module",
                                   "e.g. checkers: labkit.exercises", pattern=r"^\w+(\.\w+)*$"),
                 "questions": field("array", "a list of questions", "add at least one question",
                                    minItems=1, unique="id", items=QUESTION)})


def _rule(test, message=lambda expected, value: ""):
    """A keyword that, unlike jsonschema's own, never prints the value (maybe billions long)."""
    def keyword(validator, expected, instance, schema):
        if not test(validator, expected, instance):
            yield ValidationError(message(expected, instance))
    return keyword


def _required(validator, names, instance, schema):
    for name in names if isinstance(instance, dict) else ():
        if name not in instance:
            yield ValidationError("missing.", path=[name])


def _needs(validator, needs, instance, schema):
    for name, other in needs.items() if isinstance(instance, dict) else ():
        if name in instance and other not in instance:
            yield ValidationError(f"needs {other!r} too. Fix: add {other}.", path=[name])


def _unique(validator, key, instance, schema):
    seen = set()
    for index, entry in enumerate(instance if isinstance(instance, list) else []):
        name = entry.get(key) if isinstance(entry, dict) else None
        if isinstance(name, str) and normalise_text(name) in seen:
            yield ValidationError(f"appears more than once. Fix: give each entry its own {key}, "
                                  f"or merge them.", path=[index, key])
        elif isinstance(name, str):
            seen.add(normalise_text(name))


def _blank(value: Any) -> str | None:
    """The first text in ``value`` that no answer could match, once normalised."""
    texts = value if isinstance(value, list) else [value]
    return next((t for t in texts if isinstance(t, str) and not normalise_text(t)), None)


OWN_MESSAGES = {"required", "needs", "unique", "someCorrect", "answerable"}
Validator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine_many({
        # finite: NaN matches no answer and infinity any (and an int may be beyond a float)
        "number": lambda _, x: type(x) in (int, float) and abs(x) <= sys.float_info.max,
        "integer": lambda _, value: type(value) is int}),
    validators={
        "type": _rule(lambda v, kinds, x: any(v.is_type(x, kind) for kind in (
            [kinds] if isinstance(kinds, str) else kinds))),
        "enum": _rule(lambda v, allowed, x: isinstance(x, str) and x in allowed),
        "minItems": _rule(lambda v, count, x: not isinstance(x, list) or len(x) >= count),
        "required": _required, "needs": _needs, "unique": _unique,
        "someCorrect": _rule(lambda v, on, x: not on or not isinstance(x, list) or not x or any(
            isinstance(c, dict) and c.get("correct") is True for c in x), lambda *_: (
            "no choice has correct: true. Fix: mark the right one(s).")),
        "answerable": _rule(lambda v, _, x: _blank(x) is None, lambda fix, x: (
            f"is empty once spaces and punctuation are dropped (got {_blank(x)!r:.40}), so no "
            f"answer could ever match it. Fix: {fix}."))})


def _show(value: Any) -> str:
    """The type and the start of a value, never the whole (it may stand for billions)."""
    try:
        return f"{type(value).__name__} {reprlib.repr(value)[:60]}"
    except ValueError:  # an int with more digits than Python turns into text
        return f"{type(value).__name__} (too long to show)"


def _field(path: list, whole: str) -> str:
    """``["choices", 1, "correct"]`` -> ``"choices[1].correct"``; ``whole`` for ``[]``."""
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".") or whole


def _label(entry: Any, index: int, key: str) -> str:
    name = entry.get(key) if isinstance(entry, dict) else None
    return repr(name) if isinstance(name, str) and 0 < len(name) <= 60 else f"#{index + 1}"


def schema_problems(data: Any, schema: dict, *, entries: str = "questions", key: str = "id",
                    item: str = "question") -> list[Problem]:
    """Every way ``data`` fails ``schema``: the entry (by its ``key``), the field, the fix."""
    problems = []
    for error in Validator(schema).iter_errors(data):
        path, label = list(error.absolute_path), ""
        if len(path) > 1 and path[0] == entries and isinstance(path[1], int):
            label, path = _label(data[entries][path[1]], path[1], key), path[2:]
        if error.validator == "additionalProperties":
            known = sorted(error.schema.get("properties", {}))
            for name in (str(n) for n in error.instance if n not in known):
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"Did you mean {close[0]!r}?" if close else f"Known fields: " \
                                                                   f"{', '.join(known)}."
                problems.append(Problem(label, _field([*path, name], ""),
                                        f"unknown field. {hint}", item))
            continue
        schema_ = (error.schema.get("properties", {}).get(path[-1], {})
                   if error.validator == "required" else error.schema)
        must, fix, value = schema_.get("must", ""), schema_.get("fix", ""), error.instance
        if error.validator in OWN_MESSAGES:
            message = error.message
        elif error.validator_value == "number" and type(value) in (int, float):  # NaN, inf
            message = (f"must be {must} and finite, got {_show(value)}: .nan matches no answer "
                       f"and .inf any.")
        elif error.validator == "minItems":
            message = f"has {len(value)} entries; it needs at least {error.validator_value}."
        else:
            message = f"must be {must}, got {_show(value)}."
        if error.validator == "required":
            fix = fix or f"add {path[-1]}: <{must}>"
        if fix and "Fix:" not in message:
            message += f" Fix: {fix}."
        problems.append(Problem(label, _field(path, f"({item})" if label else "(file)"),
                                message, item))
    return problems


def _choices(raw: list[dict]) -> tuple[Choice, ...]:
    return tuple(Choice(c["id"], c["text"], c.get("correct", False), c.get("explanation", ""))
                 for c in raw)


def _target(raw: dict) -> Target:
    answer = float(raw["answer"])
    spread = max(raw.get("tolerance", 0), raw.get("relative_tolerance", 0) * abs(answer))
    return Target(answer - spread, answer + spread)


def _question(raw: dict, max_attempts: int | None, checkers) -> Question:
    kind = raw["type"]
    common = {"id": raw["id"], "prompt": raw["prompt"],
              "hints": tuple(raw.get("hints", ())), "explanation": raw.get("explanation", ""),
              "points": float(raw.get("points", 1)),  # code: unlimited unless the bank says
              "max_attempts": raw.get("max_attempts", None if kind == "code" else max_attempts)}
    if kind in ("single", "multiple"):
        cls = SingleChoice if kind == "single" else MultipleChoice
        return cls(**common, choices=_choices(raw["choices"]))
    if kind == "order":
        items = _choices(raw["items"])
        shown = [c.id for c in items]
        random.Random(raw["id"]).shuffle(shown)  # the same every time; never already solved
        if shown == [c.id for c in items]:
            shown = shown[1:] + shown[:1]
        return Ordering(**common, items=items, display_order=tuple(shown))
    if kind == "numeric":
        return Numeric(**common, targets=(_target(raw),), unit=raw.get("unit", ""),
                       units={u: float(size) for u, size in raw.get("units", {}).items()},
                       mistakes=tuple(Mistake(m["feedback"], target=_target(m))
                                      for m in raw.get("mistakes", ())))
    if kind == "text":
        return ShortText(**common, answers=(raw["answer"], *raw.get("accept", ())),
                         mistakes=tuple(Mistake(m["feedback"], text=normalise_text(m["answer"]))
                                        for m in raw.get("mistakes", ())))
    return CodeExercise(**common, checker=raw["checker"], options=raw.get("options", {}),
                        check=checkers[raw["checker"]])


def parse_bank(data: Any, *, path: Path | str = "<bank>") -> Bank:
    """A checked ``Bank`` from parsed data; ``BankError`` lists every problem. Code questions
    find their checker in the CHECKERS table of the module the bank names."""
    problems = schema_problems(data, BANK)
    raw = data.get("questions") if isinstance(data, dict) else None
    raw = raw if isinstance(raw, list) else []
    code = [(i, q) for i, q in enumerate(raw) if isinstance(q, dict)
            and q.get("type") == "code" and isinstance(q.get("checker"), str)]
    module, checkers, why = code and data.get("checkers"), {}, ""
    if code and not isinstance(module, str):
        why = ("there is no checker table to find it in. Fix: name the module that holds it at "
               "the top of the bank, e.g. checkers: labkit.exercises (its CHECKERS table)")
    elif code:
        try:
            checkers = importlib.import_module(module).CHECKERS
        except ModuleNotFoundError as error:
            why = (f"the checkers module {module!r} cannot be found ({error}). Fix: name an "
                   f"importable module, e.g. checkers: labkit.exercises")
        except AttributeError:
            why = (f"the module {module!r} has no CHECKERS table. Fix: define CHECKERS = "
                   f"{{name: function}} in it")
    problems += [Problem(_label(q, i, "id"), "checker", f"cannot look up {q['checker']!r}: {why}."
                         if why else f"{module} has no checker "
                         f"{q['checker']!r} (it has: {', '.join(sorted(checkers)) or 'none'}). "
                         f"Fix: add it to the CHECKERS table, or correct the name.")
                 for i, q in code if why or q["checker"] not in checkers]
    if problems:
        raise BankError(path, problems)
    return Bank(data["id"], data.get("title", data["id"]),
                tuple(_question(q, data.get("max_attempts", 3), checkers) for q in raw),
                tuple(data.get("previous_ids", ())))


def load_bank(path: Path | str) -> Bank:
    """Read and check a quiz bank (YAML or JSON)."""
    return parse_bank(read_data_file(path), path=path)


@dataclass(frozen=True)
class Entry:
    term: str
    definition: str
    lesson: str  # the notebook that teaches the term, e.g. "05_feature_extraction"
    aliases: tuple[str, ...] = ()
    see_also: tuple[str, ...] = ()


WORDS = field("string", "non-empty text", "give it some text", pattern=r"\S")
GLOSSARY = field("object", "a mapping with terms", required=["terms"], properties={
    "id": {}, "title": {}, "terms": field(
        "array", "a non-empty list of term entries", minItems=1, unique="term", items=field(
            "object", "a mapping of fields", required=["term", "definition", "lesson"],
            additionalProperties=False, properties={
                "term": WORDS, "definition": WORDS, "aliases": TEXTS, "see_also": TEXTS,
                "lesson": field("string", "the name of a lesson's notebook", "name the notebook "
                                "that teaches the term, without .ipynb, e.g. lesson: "
                                "05_feature_extraction", pattern=r"^\d\d_[A-Za-z0-9_]+$")}))})


def _strings(value) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) \
        else ()


def load_glossary(path: Path | str) -> list[Entry]:
    """The checked entries of a glossary file, sorted by term."""
    data = read_data_file(path, "glossary")
    problems = schema_problems(data, GLOSSARY, entries="terms", key="term", item="term")
    terms = data.get("terms") if isinstance(data, dict) else None
    entries = [Entry(t["term"], t.get("definition"), t.get("lesson"), _strings(t.get("aliases")),
                     _strings(t.get("see_also")))
               for t in terms if isinstance(t, dict) and isinstance(t.get("term"), str)
               ] if isinstance(terms, list) else []  # checked further even with problems
    known = {normalise_text(n) for e in entries for n in (e.term, *e.aliases)}
    problems += [Problem(repr(e.term), "see_also", f"{other!r} is not a term of this glossary. "
                         f"Fix: add it, or correct the name.", "term")
                 for e in entries for other in e.see_also if normalise_text(other) not in known]
    if problems:
        raise BankError(path, problems, "glossary")
    return sorted(entries, key=lambda e: normalise_text(e.term))


def read_data_file(path: Path | str, what: str = "quiz bank") -> Any:
    """The parsed content of a YAML or JSON data file; what cannot be read is a ``BankError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix.lower() == ".json":
            return json.loads(text)
        alias = next((e for e in yaml.parse(text) if isinstance(e, yaml.AliasEvent)), None)
        if alias is None:
            return yaml.safe_load(text)
        why = (f"uses the YAML alias *{alias.anchor} at line {alias.start_mark.line + 1}, column "
               f"{alias.start_mark.column + 1}: aliases are refused, because a few of them can "
               f"make a small file stand for billions of values. Fix: write the value out in "
               f"full where *{alias.anchor} stands.")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"no quiz data file at {path} (looked from {Path.cwd()}). Fix: check the name, or "
            f"give the path from the notebook's folder, e.g. quizzes/{path.name}.") from None
    except UnicodeDecodeError as error:
        line = path.read_bytes()[:error.start].count(b"\n") + 1
        why = (f"is not UTF-8 text: byte {error.object[error.start]:#04x} on line {line}. "
               f"Fix: save the file again with the encoding UTF-8.")
    except json.JSONDecodeError as error:
        why = f"is not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}."
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        why = f"is not valid YAML: {getattr(error, 'problem', None) or error}{where}."
    except RecursionError:
        why = ("is nested too deeply (lists or mappings inside one another hundreds of times). "
               "Fix: a quiz file needs only a few levels; remove the extra brackets.")
    except ValueError as error:  # an int too long to convert, an impossible date
        why = (("holds a number with thousands of digits" if "digits" in str(error) else
                f"holds a value that cannot be read ({error})") + ". Fix: write plain numbers "
               "and dates, or put quotes around the value to make it text.")
    raise BankError(path, [Problem("", "(file)", why)], what)
