"""Grading: pure functions from a question and a learner's answer to a verdict.

Nothing here knows about widgets, files or attempts; that is what makes every question type
testable with plain asserts. A verdict (``Grade``) is one of three things:

- ``correct`` or ``wrong``: the answer was understood and graded (an attempt counts);
- ``invalid``: the answer could not be read as an answer to this question (empty, wrong type,
  unknown unit, not a permutation). The message says what form is expected, and no attempt
  is used up, so a typo never costs a learner a try.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from labkit.quiz.parsing import as_number, normalise_text

__all__ = ["CORRECT", "WRONG", "INVALID", "Grade", "Choice", "Target", "Mistake", "Question",
           "SingleChoice", "MultipleChoice", "Numeric", "ShortText", "Ordering", "CodeExercise",
           "CheckResult"]

CORRECT, WRONG, INVALID = "correct", "wrong", "invalid"


@dataclass(frozen=True)
class Grade:
    status: str  # CORRECT, WRONG or INVALID
    message: str
    details: tuple[str, ...] = ()  # explanations of the chosen choices, feedback on a mistake
    record: Any = None  # the answer as the results file stores it (JSON-friendly)

    @property
    def correct(self) -> bool:
        return self.status == CORRECT


@dataclass(frozen=True)
class CheckResult:
    """What a code-exercise checker returns: a verdict and feedback aimed at the learner."""
    correct: bool
    message: str


@dataclass(frozen=True)
class Choice:
    id: str
    text: str
    correct: bool = False
    explanation: str = ""


@dataclass(frozen=True)
class Target:
    """A closed interval of accepted numbers, in the question's own unit."""
    low: float
    high: float

    def contains(self, value: float) -> bool:
        # Inclusive bounds with a little slack, so that 2.05 counts as inside 2 +/- 0.05 even
        # though 2.05 - 2 is 0.04999999999999982 or 0.05000000000000027 in floating point.
        slack = 1e-9 * max(1.0, abs(self.low), abs(self.high))
        return self.low - slack <= value <= self.high + slack


@dataclass(frozen=True)
class Mistake:
    """A known wrong answer and the feedback that addresses it."""
    feedback: str
    target: Target | None = None  # numeric questions
    text: str = ""  # short-text questions, already normalised


def _as_text(answer: Any) -> str | None:
    return answer if isinstance(answer, str) else None


def _inline(text: str) -> str:
    """Choice text as a one-line label: Markdown backticks are dropped."""
    return text.replace("`", "")


def _sentence(text: str) -> str:
    """``text`` ending in exactly one full stop (choice texts may bring their own)."""
    return text if text.rstrip().endswith((".", "!", "?")) else f"{text}."


@dataclass(frozen=True, kw_only=True)
class Question:
    """What every question type shares. Subclasses add their answer key and ``grade``."""
    id: str
    prompt: str
    code: str = ""  # shown under the prompt as a code block
    hints: tuple[str, ...] = ()
    explanation: str = ""  # shown once the question is answered correctly or revealed
    points: float = 1.0
    max_attempts: int | None = 3  # None: unlimited, and the answer is never revealed
    kind: ClassVar[str] = ""
    answer_form: ClassVar[str] = ""

    def grade(self, answer: Any) -> Grade:
        raise NotImplementedError

    def answer_key(self) -> dict:
        """Everything that decides grading; results saved under another key are stale."""
        raise NotImplementedError

    def solution(self) -> str:
        """The answer in words, shown when it is revealed."""
        raise NotImplementedError

    def example_call(self, name: str) -> str:
        return f'{name}.answer("{self.id}", {self.answer_form})'


def _choice_ids(choices: tuple[Choice, ...]) -> str:
    ids = [c.id for c in choices]
    return ", ".join(ids[:-1]) + f" or {ids[-1]}" if len(ids) > 1 else ids[0]


def _find_choice(choices: tuple[Choice, ...], token: str) -> Choice | None:
    """A choice by its id ("b", any case) or by its whole text."""
    wanted = normalise_text(token)
    for choice in choices:
        if wanted in (normalise_text(choice.id), normalise_text(_inline(choice.text))):
            return choice
    return None


@dataclass(frozen=True, kw_only=True)
class SingleChoice(Question):
    """Pick one choice; it is right if it is marked correct."""
    choices: tuple[Choice, ...]
    kind: ClassVar[str] = "single"
    answer_form: ClassVar[str] = '"<letter>"'

    def grade(self, answer: Any) -> Grade:
        text = _as_text(answer)
        if text is None or not text.strip():
            return Grade(INVALID, f"Choose one answer: {_choice_ids(self.choices)}, as a "
                                  f"string, e.g. \"{self.choices[0].id}\".")
        choice = _find_choice(self.choices, text)
        if choice is None:
            return Grade(INVALID, f"{text!r} is not one of the choices "
                                  f"{_choice_ids(self.choices)}.")
        details = (choice.explanation,) if choice.explanation else ()
        if choice.correct:
            return Grade(CORRECT, _sentence(f"Correct: {choice.id}) {_inline(choice.text)}"),
                         details, choice.id)
        return Grade(WRONG, f"Not quite: {choice.id}) is not the answer.", details, choice.id)

    def answer_key(self) -> dict:
        return {"correct": [c.id for c in self.choices if c.correct],
                "choices": [c.id for c in self.choices]}

    def solution(self) -> str:
        # Usually one right choice; a bank may accept several (jupyterquiz banks do).
        return " or ".join(f"{c.id}) {_inline(c.text)}" for c in self.choices if c.correct)


def _tokens(answer: Any) -> list[str] | None:
    """A list of ids from ["a", "c"], ("a", "c"), {"a", "c"} or "a, c" / "a c"."""
    if isinstance(answer, str):
        return [t for t in re.split(r"[,;\s]+", answer.strip()) if t]
    if isinstance(answer, (list, tuple, set, frozenset)) and all(isinstance(t, str)
                                                                  for t in answer):
        return sorted(answer) if isinstance(answer, (set, frozenset)) else list(answer)
    return None


@dataclass(frozen=True, kw_only=True)
class MultipleChoice(Question):
    choices: tuple[Choice, ...]
    kind: ClassVar[str] = "multiple"
    answer_form: ClassVar[str] = '["<letter>", "<letter>", ...]'

    def grade(self, answer: Any) -> Grade:
        tokens = _tokens(answer)
        if not tokens:
            return Grade(INVALID, f"Choose one or more of {_choice_ids(self.choices)}, as a "
                                  f"list of strings, e.g. [\"{self.choices[0].id}\"].")
        chosen = [_find_choice(self.choices, t) for t in tokens]
        unknown = [t for t, c in zip(tokens, chosen) if c is None]
        if unknown:
            return Grade(INVALID, f"{', '.join(map(repr, unknown))} not among the choices "
                                  f"{_choice_ids(self.choices)}.")
        picked = [c for c in self.choices if c in chosen]  # choice order, no duplicates
        record = [c.id for c in picked]
        wrong = [c for c in picked if not c.correct]
        missing = [c for c in self.choices if c.correct and c not in picked]
        if not wrong and not missing:
            return Grade(CORRECT, "Correct: you found every right choice.",
                         tuple(c.explanation for c in picked if c.explanation), record)
        parts = []
        if wrong:
            parts.append(f"{len(wrong)} of your choices {'is' if len(wrong) == 1 else 'are'} "
                         f"not right")
        if missing:
            parts.append(f"{len(missing)} right choice{'' if len(missing) == 1 else 's'} "
                         f"{'is' if len(missing) == 1 else 'are'} missing")
        # Explain only the wrong picks: explaining the right ones would give them away.
        return Grade(WRONG, f"Not quite: {' and '.join(parts)}.",
                     tuple(f"{c.id}) {c.explanation}" for c in wrong if c.explanation), record)

    def answer_key(self) -> dict:
        return {"correct": [c.id for c in self.choices if c.correct],
                "choices": [c.id for c in self.choices]}

    def solution(self) -> str:
        return "; ".join(f"{c.id}) {_inline(c.text)}" for c in self.choices if c.correct)


@dataclass(frozen=True, kw_only=True)
class Numeric(Question):
    targets: tuple[Target, ...]  # the first is the official answer
    unit: str = ""
    units: Mapping[str, float] = field(default_factory=dict)  # other unit -> size in `unit`
    mistakes: tuple[Mistake, ...] = ()
    kind: ClassVar[str] = "numeric"
    answer_form: ClassVar[str] = "<number>"

    def _scale(self, unit: str) -> float | None:
        known = {self.unit: 1.0, **self.units} if self.unit else dict(self.units)
        if not unit or unit in known:
            return known.get(unit, 1.0)
        folded = [u for u in known if u.casefold() == unit.casefold()]
        return known[folded[0]] if len(folded) == 1 else None

    def grade(self, answer: Any) -> Grade:
        parsed = as_number(answer)
        unit_note = f" in {self.unit}" if self.unit else ""
        if isinstance(parsed, str):
            return Grade(INVALID, f"Answer with a number{unit_note}: {parsed}.")
        value, unit = parsed
        scale = self._scale(unit)
        if scale is None:
            known = [self.unit, *self.units] if self.unit else list(self.units)
            expected = f"one of {', '.join(known)}" if known else "no unit"
            return Grade(INVALID, f"Unknown unit {unit!r}: use {expected}.")
        value *= scale
        record = value if not unit else f"{parsed[0]:g} {unit}"
        if any(t.contains(value) for t in self.targets):
            return Grade(CORRECT, f"Correct: {value:g}{' ' + self.unit if self.unit else ''}.",
                         record=record)
        details = tuple(m.feedback for m in self.mistakes if m.target and m.target.contains(value))
        return Grade(WRONG, f"Not quite: {value:g}{' ' + self.unit if self.unit else ''} is "
                            f"not the answer.", details, record)

    def answer_key(self) -> dict:
        return {"targets": [[t.low, t.high] for t in self.targets], "unit": self.unit,
                "units": dict(self.units)}

    def solution(self) -> str:
        t = self.targets[0]
        middle, half = (t.low + t.high) / 2, (t.high - t.low) / 2
        unit = f" {self.unit}" if self.unit else ""
        return f"{middle:g}{unit}" + (f" (± {half:g})" if half else "")


@dataclass(frozen=True, kw_only=True)
class ShortText(Question):
    answers: tuple[str, ...]  # the first is the official answer; all compared normalised
    mistakes: tuple[Mistake, ...] = ()
    kind: ClassVar[str] = "text"
    answer_form: ClassVar[str] = '"<your answer>"'

    def grade(self, answer: Any) -> Grade:
        text = _as_text(answer)
        if text is None:
            return Grade(INVALID, f"Answer with text in quotes, not a {type(answer).__name__}: "
                                  f"e.g. {self.example_call('quiz')}.")
        said = normalise_text(text)
        if not said:
            return Grade(INVALID, "The answer is empty: type a word or a short phrase.")
        record = text.strip()
        if said in {normalise_text(a) for a in self.answers}:
            return Grade(CORRECT, _sentence(f"Correct: {self.answers[0]}"), record=record)
        details = tuple(m.feedback for m in self.mistakes if m.text == said)
        return Grade(WRONG, f"Not quite: {record!r} is not the answer.", details, record)

    def answer_key(self) -> dict:
        return {"answers": sorted({normalise_text(a) for a in self.answers})}

    def solution(self) -> str:
        return self.answers[0]


@dataclass(frozen=True, kw_only=True)
class Ordering(Question):
    items: tuple[Choice, ...]  # in the correct order; shown in ``display_order``
    display_order: tuple[str, ...] = ()
    kind: ClassVar[str] = "order"
    answer_form: ClassVar[str] = '["<id>", "<id>", ...]'

    def grade(self, answer: Any) -> Grade:
        ids = [c.id for c in self.items]
        tokens = _tokens(answer)
        form = f"a list of all {len(ids)} ids in order, e.g. {list(self.display_order or ids)!r}"
        if not tokens:
            return Grade(INVALID, f"Answer with {form}.")
        found = [_find_choice(self.items, t) for t in tokens]
        unknown = [t for t, c in zip(tokens, found) if c is None]
        order = [c.id for c in found if c is not None]
        if unknown:
            return Grade(INVALID, f"{', '.join(map(repr, unknown))} not among {', '.join(ids)}.")
        if sorted(order) != sorted(ids):
            twice = sorted({i for i in order if order.count(i) > 1})
            missing = [i for i in ids if i not in order]
            problem = (f"{', '.join(twice)} appear{'s' if len(twice) == 1 else ''} twice"
                       if twice else f"{', '.join(missing)} missing")
            return Grade(INVALID, f"Use every item exactly once ({problem}): answer with {form}.")
        if order == ids:
            return Grade(CORRECT, "Correct: that is the right order.", record=order)
        placed = sum(a == b for a, b in zip(order, ids))
        return Grade(WRONG, f"Not quite: {placed} of {len(ids)} in the right place.",
                     record=order)

    def answer_key(self) -> dict:
        return {"order": [c.id for c in self.items]}

    def solution(self) -> str:
        return " → ".join(_inline(c.text) for c in self.items)


def _describe(answer: Any) -> str:
    """What the results file records for an object handed to a checker."""
    text = repr(answer) if isinstance(answer, (int, float, str, bool, type(None))) else None
    return text if text is not None and len(text) <= 80 else f"<{type(answer).__name__}>"


def _keeping_random_state(check, answer, options):
    """Run a checker without moving torch's random stream: checkers build models and draw
    inputs, and grading an answer must not change what the learner's next cells compute."""
    import torch

    with torch.random.fork_rng(devices=[]):
        return check(answer, **options)


@dataclass(frozen=True, kw_only=True)
class CodeExercise(Question):
    """The learner hands over an object (a model, a tensor); a checker in Python grades it.

    Checkers are looked up by name in ``labkit.quiz.checkers`` at grading time: data files
    only name them, so a quiz bank can never carry code.
    """
    checker: str
    options: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments for the checker
    # Where the checker is found; None means labkit's registry (tests pass their own).
    lookup: Callable[[str], Callable[..., CheckResult]] | None = field(
        default=None, compare=False, repr=False)
    kind: ClassVar[str] = "code"
    answer_form: ClassVar[str] = "<your object>"

    def grade(self, answer: Any) -> Grade:
        if self.lookup is None:
            from labkit.quiz.checkers import get_checker
            check = get_checker(self.checker)
        else:
            check = self.lookup(self.checker)
        try:
            result = _keeping_random_state(check, answer, self.options)
        except Exception as error:  # the learner's object surprised the checker
            return Grade(INVALID, f"The checker could not inspect your answer: "
                                  f"{type(error).__name__}: {error}")
        if not isinstance(result, CheckResult):
            return Grade(INVALID, f"The checker {self.checker!r} returned a "
                                  f"{type(result).__name__}, not a CheckResult; this is a bug "
                                  f"in the checker, not in your answer.")
        return Grade(CORRECT if result.correct else WRONG, result.message,
                     record=_describe(answer))

    def answer_key(self) -> dict:
        return {"checker": self.checker, "options": dict(self.options)}

    def solution(self) -> str:
        return "See the solution in the lesson."
