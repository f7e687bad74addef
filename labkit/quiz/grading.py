"""Question types and their grading: a question and an answer give ``Feedback`` (lesson 00).
An answer that cannot be read (empty, wrong type, unknown unit) is invalid: it costs no attempt."""

import math
import numbers
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from labkit.quiz.checkers import CheckResult

CORRECT, WRONG, INVALID = "correct", "wrong", "invalid"


def normalise_text(text: str) -> str:
    """The form short answers are compared in: NFKC, case folded ("Straße" is "strasse"),
    dashes read as spaces, runs of spaces collapsed, surrounding quotes and punctuation dropped."""
    text = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())
    text = re.sub(r"[\-\u2010-\u2015\u2212]", " ", text)
    return " ".join(text.split()).strip(" .,;:!?\"'`\u201c\u201d\u2018\u2019")


_NUMBER = re.compile(r"\s*(?P<number>[-+]?[\d.,_]*\d[\d.,_]*(?:[eE][-+]?\d+)?)\s*(?P<unit>.*?)\s*")
_THOUSANDS = re.compile(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d*)?(?:[eE][-+]?\d+)?")


def as_number(answer: Any) -> tuple[float, str] | str:
    """(value, unit), or the reason the answer is not a number. Text may carry a unit and
    separate thousands with commas or underscores: "11,176,512", "2.5e9 FLOP"."""
    if hasattr(answer, "item") and not isinstance(answer, numbers.Real):
        try:
            answer = answer.item()  # a one-element tensor or NumPy scalar
        except (TypeError, ValueError, RuntimeError):
            return f"a {type(answer).__name__} with more than one value is not a number"
    unit = ""
    if isinstance(answer, str):
        match = _NUMBER.fullmatch(unicodedata.normalize("NFKC", answer).replace("\u2212", "-"))
        if not match:
            return f"{answer.strip()!r} does not start with a number" if answer.strip() \
                else "the answer is empty"
        answer, unit = match["number"], match["unit"]
        if _THOUSANDS.fullmatch(answer):
            answer = answer.replace(",", "")
    elif isinstance(answer, bool) or not isinstance(answer, numbers.Real):
        return f"a {type(answer).__name__} is not a number"
    try:
        value = float(answer)
    except ValueError:  # "1__0", "1,2,3", "2,5"
        return f"{answer!r} is not a number we can read; write it as 11176512, 11,176,512 or 2.5"
    except OverflowError:
        return f"{answer!r} is too large"
    return (value, unit) if math.isfinite(value) else f"{answer!r} is not a finite number"


@dataclass(frozen=True)
class Feedback:
    """A grade, and what the learner reads: the quiz adds the question and the attempts."""
    status: str  # CORRECT, WRONG or INVALID; the quiz adds closed and revealed
    message: str
    details: tuple[str, ...] = ()  # explanations of the chosen choices, feedback on a mistake
    record: Any = None  # the answer as the results file stores it (JSON-friendly)
    question_id: str = ""
    attempts: int = 0
    correct = property(lambda self: self.status == CORRECT)

    def __str__(self) -> str:
        return "\n".join([f"[{self.question_id}] {self.message}",
                          *(f"  {d}" for d in self.details)])

    def _repr_pretty_(self, printer, cycle) -> None:
        printer.text(str(self))


@dataclass(frozen=True)
class Choice:
    id: str
    text: str
    correct: bool = False
    explanation: str = ""
    plain = property(lambda self: self.text.replace("`", ""))  # no Markdown code marks
    label = property(lambda self: f"{self.id}) {self.plain}")


@dataclass(frozen=True)
class Target:
    """A closed interval of accepted numbers, in the question's own unit."""
    low: float
    high: float

    def contains(self, value: float) -> bool:
        # A little slack: 2.05 - 2 is 0.04999999999999982 or 0.05000000000000027 in floating point.
        slack = 1e-9 * max(1.0, abs(self.low), abs(self.high))
        return self.low - slack <= value <= self.high + slack


@dataclass(frozen=True)
class Mistake:
    """A known wrong answer (a numeric interval or a normalised text) and its feedback."""
    feedback: str
    target: Target | None = None
    text: str = ""


def _sentence(text: str) -> str:  # choice texts may bring their own full stop
    return text if text.rstrip().endswith((".", "!", "?")) else f"{text}."


def _ids(choices: tuple[Choice, ...]) -> str:
    ids = [c.id for c in choices]
    return ", ".join(ids[:-1]) + f" or {ids[-1]}" if len(ids) > 1 else ids[0]


def _find(choices: tuple[Choice, ...], tokens: list[str]) -> tuple[list[Choice], str]:
    """The choices ``tokens`` name by id or whole text, and the tokens that name none."""
    names = {normalise_text(name): c for c in choices for name in (c.id, c.plain)}
    unknown = [repr(t) for t in tokens if normalise_text(t) not in names]
    return [names.get(normalise_text(t)) for t in tokens], ", ".join(unknown)


def _tokens(answer: Any) -> list[str] | None:
    """A list of ids from ["a", "c"], ("a", "c"), {"a", "c"} or "a, c" / "a c"."""
    if isinstance(answer, str):
        return [t for t in re.split(r"[,;\s]+", answer.strip()) if t]
    if isinstance(answer, (list, tuple, set, frozenset)) and all(isinstance(t, str)
                                                                  for t in answer):
        return sorted(answer) if isinstance(answer, (set, frozenset)) else list(answer)
    return None


@dataclass(frozen=True, kw_only=True)
class Question:
    """A subclass defines ``grade(answer) -> Feedback``, ``answer_key()`` (what decides grading:
    progress saved under another key is stale) and ``solution()``, shown when revealed."""
    id: str
    prompt: str
    hints: tuple[str, ...] = ()
    explanation: str = ""  # shown once answered correctly or revealed
    points: float = 1.0
    max_attempts: int | None = 3  # None: unlimited, and the answer is never revealed
    kind: ClassVar[str] = ""
    answer_form: ClassVar[str] = ""

    def example_call(self) -> str:
        return f'quiz.answer("{self.id}", {self.answer_form})'


@dataclass(frozen=True, kw_only=True)
class SingleChoice(Question):
    """Pick one choice; it is right if it is marked correct."""
    choices: tuple[Choice, ...]
    kind: ClassVar[str] = "single"
    answer_form: ClassVar[str] = '"<letter>"'

    def grade(self, answer: Any) -> Feedback:
        if not isinstance(answer, str) or not answer.strip():
            return Feedback(INVALID, f"Choose one answer: {_ids(self.choices)}, as a "
                                     f"string, e.g. \"{self.choices[0].id}\".")
        (choice,), unknown = _find(self.choices, [answer.strip()])
        if unknown:
            return Feedback(INVALID, f"{answer!r} is not one of the choices {_ids(self.choices)}.")
        details = (choice.explanation,) if choice.explanation else ()
        if choice.correct:
            return Feedback(CORRECT, _sentence(f"Correct: {choice.label}"), details, choice.id)
        return Feedback(WRONG, f"Not quite: {choice.id}) is not the answer.", details, choice.id)

    def answer_key(self) -> dict:
        return {"correct": [c.id for c in self.choices if c.correct],
                "choices": [c.id for c in self.choices]}

    def solution(self) -> str:
        return " or ".join(c.label for c in self.choices if c.correct)


@dataclass(frozen=True, kw_only=True)
class MultipleChoice(Question):
    """Pick every right choice."""
    choices: tuple[Choice, ...]
    kind: ClassVar[str] = "multiple"
    answer_form: ClassVar[str] = '["<letter>", "<letter>", ...]'
    answer_key = SingleChoice.answer_key

    def grade(self, answer: Any) -> Feedback:
        tokens = _tokens(answer)
        if not tokens:
            return Feedback(INVALID, f"Choose one or more of {_ids(self.choices)}, as a "
                                     f"list of strings, e.g. [\"{self.choices[0].id}\"].")
        chosen, unknown = _find(self.choices, tokens)
        if unknown:
            return Feedback(INVALID, f"{unknown} not among the choices {_ids(self.choices)}.")
        picked = [c for c in self.choices if c in chosen]  # choice order, no duplicates
        record = [c.id for c in picked]
        wrong = [c for c in picked if not c.correct]
        missing = [c for c in self.choices if c.correct and c not in picked]
        if not wrong and not missing:
            return Feedback(CORRECT, "Correct: you found every right choice.",
                            tuple(c.explanation for c in picked if c.explanation), record)
        parts = [f"{len(wrong)} of your choices {'is' if len(wrong) == 1 else 'are'} not right"
                 ] if wrong else []
        if missing:
            parts.append(f"{len(missing)} right choice{'' if len(missing) == 1 else 's'} "
                         f"{'is' if len(missing) == 1 else 'are'} missing")
        # Explain only the wrong picks: explaining the right ones would give them away.
        return Feedback(WRONG, f"Not quite: {' and '.join(parts)}.",
                        tuple(f"{c.id}) {c.explanation}" for c in wrong if c.explanation), record)

    def solution(self) -> str:
        return "; ".join(c.label for c in self.choices if c.correct)


@dataclass(frozen=True, kw_only=True)
class Numeric(Question):
    targets: tuple[Target, ...]  # the first is the official answer
    unit: str = ""
    units: Mapping[str, float] = field(default_factory=dict)  # other unit -> size in `unit`
    mistakes: tuple[Mistake, ...] = ()
    kind: ClassVar[str] = "numeric"
    answer_form: ClassVar[str] = "<number>"

    def grade(self, answer: Any) -> Feedback:
        parsed, shown = as_number(answer), f" {self.unit}" if self.unit else ""
        if isinstance(parsed, str):
            return Feedback(INVALID, f"Answer with a number{shown and ' in' + shown}: {parsed}.")
        number, unit = parsed
        known = {self.unit: 1.0, **self.units} if self.unit else dict(self.units)
        scales = [known[u] for u in known if u.casefold() == unit.casefold()]  # "gflop" too
        if unit and unit not in known and len(scales) != 1:
            return Feedback(INVALID, f"Unknown unit {unit!r}: use "
                                     f"{'one of ' + ', '.join(known) if known else 'no unit'}.")
        value = number * known.get(unit, scales[0] if unit else 1.0)
        record = value if not unit else f"{number:g} {unit}"
        if any(t.contains(value) for t in self.targets):
            return Feedback(CORRECT, f"Correct: {value:g}{shown}.", record=record)
        details = tuple(m.feedback for m in self.mistakes if m.target and m.target.contains(value))
        return Feedback(WRONG, f"Not quite: {value:g}{shown} is not the answer.", details, record)

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

    def grade(self, answer: Any) -> Feedback:
        if not isinstance(answer, str):
            return Feedback(INVALID, f"Answer with text in quotes, not a {type(answer).__name__}: "
                                     f"e.g. {self.example_call()}.")
        said, record = normalise_text(answer), answer.strip()
        if not said:
            return Feedback(INVALID, "The answer is empty: type a word or a short phrase.")
        if said in {normalise_text(a) for a in self.answers}:
            return Feedback(CORRECT, _sentence(f"Correct: {self.answers[0]}"), record=record)
        details = tuple(m.feedback for m in self.mistakes if m.text == said)
        return Feedback(WRONG, f"Not quite: {record!r} is not the answer.", details, record)

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

    def grade(self, answer: Any) -> Feedback:
        ids, tokens = [c.id for c in self.items], _tokens(answer)
        form = f"a list of all {len(ids)} ids in order, e.g. {list(self.display_order or ids)!r}"
        if not tokens:
            return Feedback(INVALID, f"Answer with {form}.")
        found, unknown = _find(self.items, tokens)
        if unknown:
            return Feedback(INVALID, f"{unknown} not among {', '.join(ids)}.")
        order = [c.id for c in found]
        if sorted(order) != sorted(ids):
            twice = sorted({i for i in order if order.count(i) > 1})
            problem = (f"{', '.join(twice)} appear{'s' if len(twice) == 1 else ''} twice" if twice
                       else f"{', '.join(i for i in ids if i not in order)} missing")
            return Feedback(INVALID, f"Use every item exactly once ({problem}): answer with "
                                     f"{form}.")
        if order == ids:
            return Feedback(CORRECT, "Correct: that is the right order.", record=order)
        placed = sum(a == b for a, b in zip(order, ids))
        return Feedback(WRONG, f"Not quite: {placed} of {len(ids)} in the right place.",
                        record=order)

    def answer_key(self) -> dict:
        return {"order": [c.id for c in self.items]}

    def solution(self) -> str:
        return " → ".join(c.plain for c in self.items)


@dataclass(frozen=True, kw_only=True)
class CodeExercise(Question):
    """The learner hands over an object (a model, a function); ``check`` grades it. A bank only
    names the checker, found in its checkers' table: a data file never carries code."""
    checker: str
    options: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments for the checker
    check: Callable | None = field(default=None, compare=False, repr=False)
    kind: ClassVar[str] = "code"
    answer_form: ClassVar[str] = "<your object>"

    def grade(self, answer: Any) -> Feedback:
        import torch  # late: loading a bank must not cost a torch import

        try:
            # Checkers build models and draw inputs: grading must not move the learner's
            # random stream, or their next cells would compute something else.
            with torch.random.fork_rng(devices=[]):
                result = self.check(answer, **self.options)
        except Exception as error:  # the learner's object surprised the checker
            return Feedback(INVALID, f"The checker could not inspect your answer: "
                                     f"{type(error).__name__}: {error}")
        if not isinstance(result, CheckResult):
            return Feedback(INVALID, f"The checker {self.checker!r} returned a "
                                     f"{type(result).__name__}, not a CheckResult; this is a bug "
                                     f"in the checker, not in your answer.")
        shown = repr(answer) if isinstance(answer, (int, float, str, bool, type(None))) else ""
        record = shown if shown and len(shown) <= 80 else f"<{type(answer).__name__}>"
        return Feedback(CORRECT if result.correct else WRONG, result.message, record=record)

    def answer_key(self) -> dict:
        return {"checker": self.checker, "options": dict(self.options)}

    def solution(self) -> str:
        return "See the solution in the lesson."
