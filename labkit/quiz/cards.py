"""Flashcards and a glossary, fed from ``quizzes/glossary.yaml`` (lesson 00)::

    id: glossary
    terms:
      - term: fine-tuning
        definition: Training some or all of a pre-trained network's layers on your data ...
        lesson: 06_fine_tuning         # the notebook (name without .ipynb) that teaches it
        aliases: [finetuning]          # optional: other spellings that find the entry
        see_also: [feature extraction] # optional: must be terms of this glossary

The file is checked like a quiz bank, with messages naming the file, the term and the field.
"""

import html
import random
from dataclasses import dataclass
from pathlib import Path

import ipywidgets as widgets

from labkit.quiz.bank import TEXTS, BankError, Problem, field, read_data_file, schema_problems
from labkit.quiz.grading import normalise_text
from labkit.quiz.quiz import classed, inline_markup


@dataclass(frozen=True)
class Card:
    front: str
    back: str


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
        "array", "a non-empty list of term entries", minItems=1, items=field(
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
    names = [normalise_text(e.term) for e in entries]
    problems += [Problem(repr(twice), "term", "appears more than once. Fix: merge the entries.",
                         "term") for twice in sorted({n for n in names if names.count(n) > 1})]
    known = {normalise_text(n) for e in entries for n in (e.term, *e.aliases)}
    problems += [Problem(repr(e.term), "see_also", f"{other!r} is not a term of this glossary. "
                         f"Fix: add it, or correct the name.", "term")
                 for e in entries for other in e.see_also if normalise_text(other) not in known]
    if problems:
        raise BankError(path, problems, "glossary")
    return sorted(entries, key=lambda e: normalise_text(e.term))


class Flashcards:
    """Flip, previous, next, shuffle. ``Flashcards.for_lesson("quizzes/glossary.yaml",
    "05_feature_extraction")``; lesson 00 shows the first deck."""

    def __init__(self, cards: list[Card], *, title: str = "Flashcards"):
        if not cards:
            raise ValueError("a deck needs at least one card. Fix: give it some cards.")
        self.cards, self.title, self._widget = list(cards), title, None
        self.order, self.position, self.showing_back = list(range(len(cards))), 0, False

    @classmethod
    def from_glossary(cls, path: Path | str) -> "Flashcards":
        return cls([Card(e.term, e.definition) for e in load_glossary(path)],
                   title="Flashcards: the words of the course")

    @classmethod
    def for_lesson(cls, path: Path | str, lesson: str) -> "Flashcards":
        """The terms that ``lesson`` (a notebook's name, "05_feature_extraction") teaches."""
        entries = load_glossary(path)
        mine = [Card(e.term, e.definition) for e in entries if e.lesson == lesson]
        if not mine:
            raise KeyError(f"{path} has no term taught in {lesson!r}. Fix: name the lesson as "
                           f"the glossary does, one of "
                           f"{', '.join(sorted({e.lesson for e in entries}))}.")
        return cls(mine, title=f"Flashcards: the words of {lesson}")

    @classmethod
    def review(cls, path: Path | str, *, seed: int = 0) -> "Flashcards":
        """Every term of the course, shuffled by ``seed``; the back names the lesson."""
        entries = load_glossary(path)
        random.Random(seed).shuffle(entries)
        return cls([Card(e.term, f"{e.definition} (lesson {e.lesson})") for e in entries],
                   title="Review: the words of the whole course")

    @property
    def card(self) -> Card:
        return self.cards[self.order[self.position]]

    def flip(self) -> None:
        self.showing_back = not self.showing_back

    def next(self, step: int = 1) -> None:
        self.position, self.showing_back = (self.position + step) % len(self.cards), False

    def previous(self) -> None:
        self.next(-1)

    def shuffle(self, seed: int | None = None) -> None:
        random.Random(seed).shuffle(self.order)
        self.position, self.showing_back = 0, False

    @property
    def widget(self) -> widgets.VBox:
        if self._widget is None:
            self._card = classed(widgets.HTML(layout=widgets.Layout(
                border="1px solid #999", padding="12px", min_height="5em", width="36em")),
                "lk-card")
            self._position = classed(widgets.Label(), "lk-card-position")
            buttons = []
            for action in (self.flip, self.previous, self.next, self.shuffle):
                name = action.__name__
                button = classed(widgets.Button(description=name.title()), f"lk-{name}")
                button.on_click(lambda _, act=action: (act(), self.refresh()))
                buttons.append(button)
            self._widget = classed(widgets.VBox([
                widgets.HTML(f"<b>{html.escape(self.title)}</b>"), self._card,
                widgets.HBox([*buttons, self._position])]), "lk-flashcards")
            self.refresh()
        return self._widget

    def refresh(self) -> None:
        side = "back" if self.showing_back else "front"
        style = "" if self.showing_back else "font-size:1.4em;font-weight:bold"
        self._card.value = (f"<div class='lk-card-{side}' style='{style}'>"
                            f"{inline_markup(getattr(self.card, side))}</div>")
        self._position.value = f"card {self.position + 1} of {len(self.cards)} ({side})"

    def text(self) -> str:
        return "\n".join([f"{self.title}: {len(self.cards)} cards",
                          *(f"- {c.front}: {c.back}" for c in self.cards)])

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return {**self.widget._repr_mimebundle_(), "text/plain": self.text()}


class Glossary:
    """The course's terms. ``Glossary.from_file("quizzes/glossary.yaml")``; lesson 00."""

    def __init__(self, entries: list[Entry]):
        self.entries, self._widget = list(entries), None

    @classmethod
    def from_file(cls, path: Path | str) -> "Glossary":
        return cls(load_glossary(path))

    def lookup(self, term: str) -> Entry:
        """The entry of ``term`` or of one of its aliases."""
        wanted = normalise_text(term)
        for entry in self.entries:
            if wanted in {normalise_text(n) for n in (entry.term, *entry.aliases)}:
                return entry
        raise KeyError(f"{term!r} is not in the glossary. Fix: pick a term from its list.")

    @property
    def widget(self) -> widgets.HBox:
        if self._widget is None:
            self._terms = classed(widgets.Select(options=[e.term for e in self.entries],
                                                 rows=8), "lk-glossary-terms")
            self._entry = classed(widgets.HTML(layout=widgets.Layout(width="36em")),
                                  "lk-glossary-entry")
            self._terms.observe(lambda change: self._select(change["new"]), names="value")
            self._widget = classed(widgets.HBox([self._terms, self._entry]), "lk-glossary")
            self._select(self._terms.value)
        return self._widget

    def _select(self, term: str) -> None:
        entry = self.lookup(term)
        see_also = f"<br><i>See also:</i> {html.escape(', '.join(entry.see_also))}"
        self._entry.value = (f"<b>{html.escape(entry.term)}</b>: {inline_markup(entry.definition)}"
                             f"{see_also if entry.see_also else ''}"
                             f"<br><i>Taught in:</i> {html.escape(entry.lesson)}")

    def text(self) -> str:
        return "Glossary\n" + "\n".join(f"- {e.term}: {e.definition}" for e in self.entries)

    _repr_mimebundle_ = Flashcards._repr_mimebundle_
