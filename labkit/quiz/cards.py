"""Flashcards and a glossary, fed from ``quizzes/glossary.yaml``::

    id: glossary
    terms:
      - term: fine-tuning
        definition: Training some or all of a pre-trained network's layers on your data ...
        lesson: 06_fine_tuning         # the notebook (name without .ipynb) that teaches it
        aliases: [finetuning]          # optional: other spellings that find the entry
        see_also: [feature extraction] # optional: must be terms of this glossary

``Flashcards.from_glossary`` makes a card of each term (term in front), ``for_lesson`` of the
terms one lesson teaches, ``review`` of every term, spaced out. The file is checked like a quiz
bank; the state (which card, which side) is a plain ``Deck`` that the widgets draw.
"""

from __future__ import annotations

import html
import random
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as widgets

from labkit.quiz.bank import BankError, Problem, read_data_file, schema_problems
from labkit.quiz.bank import TEXTS, field as schema_field
from labkit.quiz.grading import normalise_text
from labkit.quiz.quiz import inline_markup


@dataclass(frozen=True)
class Card:
    front: str
    back: str


@dataclass(frozen=True)
class Entry:
    term: str
    definition: str
    aliases: tuple[str, ...] = ()
    see_also: tuple[str, ...] = ()
    lesson: str = ""  # the notebook that teaches the term, e.g. "05_feature_extraction"


WORDS = schema_field("string", "non-empty text", "give it some text", pattern=r"\S")
GLOSSARY = schema_field("object", "a mapping with terms", required=["terms"], properties={
    "id": {}, "title": {}, "terms": schema_field(
        "array", "a non-empty list of term entries", minItems=1, items=schema_field(
            "object", "a mapping of fields", required=["term", "definition", "lesson"],
            additionalProperties=False, properties={
                "term": WORDS, "definition": WORDS, "aliases": TEXTS, "see_also": TEXTS,
                "lesson": schema_field(
                    "string", "the name of a lesson's notebook", "name the notebook that "
                    "teaches the term, without .ipynb, e.g. lesson: 05_feature_extraction",
                    pattern=r"^\d\d_[A-Za-z0-9_]+$")}))})


def _strings(value) -> tuple[str, ...]:
    return tuple(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) \
        else ()


def load_glossary(path: Path | str) -> list[Entry]:
    """The checked entries of a glossary file, sorted by term."""
    data = read_data_file(path, "glossary")
    problems = schema_problems(data, GLOSSARY, entries="terms", key="term", item="term")
    terms = data.get("terms") if isinstance(data, dict) else None
    entries = [Entry(t["term"], t.get("definition"), _strings(t.get("aliases")),
                     _strings(t.get("see_also")), t.get("lesson"))
               for t in terms if isinstance(t, dict) and isinstance(t.get("term"), str)
               ] if isinstance(terms, list) else []
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


@dataclass
class Deck:
    """Which card is up and which side shows. ``order`` is a permutation of card indices."""
    cards: list[Card]
    order: list[int] = field(default_factory=list)
    position: int = 0
    showing_back: bool = False

    def __post_init__(self) -> None:
        if not self.cards:
            raise ValueError("a deck needs at least one card. Fix: give it some cards.")
        self.order = self.order or list(range(len(self.cards)))

    @property
    def card(self) -> Card:
        return self.cards[self.order[self.position]]

    def flip(self) -> None:
        self.showing_back = not self.showing_back

    def next(self) -> None:
        self.position, self.showing_back = (self.position + 1) % len(self.cards), False

    def previous(self) -> None:
        self.position, self.showing_back = (self.position - 1) % len(self.cards), False

    def shuffle(self, seed: int | None = None) -> None:
        random.Random(seed).shuffle(self.order)
        self.position, self.showing_back = 0, False


class Flashcards:
    """Flip, next, previous, shuffle. ``Flashcards.from_glossary("quizzes/glossary.yaml")``."""

    def __init__(self, cards: list[Card], *, title: str = "Flashcards"):
        self.deck, self.title = Deck(list(cards)), title
        self._widget: widgets.VBox | None = None

    @classmethod
    def from_glossary(cls, path: Path | str, *, terms: list[str] | None = None,
                      title: str = "Flashcards: the words of the course") -> Flashcards:
        entries = load_glossary(path)
        if terms is not None:
            wanted = {normalise_text(t) for t in terms}
            entries = [e for e in entries if normalise_text(e.term) in wanted]
            missing = wanted - {normalise_text(e.term) for e in entries}
            if missing:
                raise KeyError(f"{path} has no term(s) {', '.join(sorted(missing))}. Fix: use "
                               f"terms as the glossary spells them.")
        return cls([Card(e.term, e.definition) for e in entries], title=title)

    @classmethod
    def for_lesson(cls, path: Path | str, lesson: str, *,
                   title: str | None = None) -> Flashcards:
        """The terms that ``lesson`` (a notebook's name, "05_feature_extraction") teaches."""
        entries = [e for e in load_glossary(path) if e.lesson == lesson]
        if not entries:
            known = sorted({e.lesson for e in load_glossary(path)})
            raise KeyError(f"{path} has no term taught in {lesson!r}. Fix: name the lesson as "
                           f"the glossary does, one of {', '.join(known)}.")
        return cls([Card(e.term, e.definition) for e in entries],
                   title=title or f"Flashcards: the words of {lesson}")

    @classmethod
    def review(cls, path: Path | str, *, seed: int = 0,
               title: str = "Review: the words of the whole course") -> Flashcards:
        """Every term, spaced out: each round takes one card from every lesson (in course
        order, each lesson's cards shuffled by ``seed``), so two cards of one lesson follow
        each other only once no other lesson has cards left. The back names the lesson."""
        by_lesson: dict[str, list[Entry]] = {}
        for entry in load_glossary(path):
            by_lesson.setdefault(entry.lesson, []).append(entry)
        rng = random.Random(seed)
        for entries in by_lesson.values():
            rng.shuffle(entries)
        rounds = max(len(entries) for entries in by_lesson.values())
        spaced = [entries[i] for i in range(rounds) for _, entries in sorted(by_lesson.items())
                  if i < len(entries)]
        return cls([Card(e.term, f"{e.definition} (lesson {e.lesson})") for e in spaced],
                   title=title)

    def _act(self, action) -> None:
        action()
        self.refresh()

    @property
    def widget(self) -> widgets.VBox:
        if self._widget is None:
            self._card = widgets.HTML(layout=widgets.Layout(
                border="1px solid #999", padding="12px", min_height="5em", width="36em"))
            self._card.add_class("lk-card")
            self._position = widgets.Label()
            self._position.add_class("lk-card-position")
            buttons = []
            for label, css, action in (("Flip", "lk-flip", self.deck.flip),
                                       ("Previous", "lk-previous", self.deck.previous),
                                       ("Next", "lk-next", self.deck.next),
                                       ("Shuffle", "lk-shuffle", self.deck.shuffle)):
                button = widgets.Button(description=label)
                button.add_class(css)
                button.on_click(lambda _, act=action: self._act(act))
                buttons.append(button)
            title = widgets.HTML(f"<b>{html.escape(self.title)}</b>")
            self._widget = widgets.VBox([title, self._card,
                                         widgets.HBox([*buttons, self._position])])
            self._widget.add_class("lk-flashcards")
            self.refresh()
        return self._widget

    def refresh(self) -> None:
        if self._widget is None:
            return
        deck = self.deck
        side = "back" if deck.showing_back else "front"
        text = deck.card.back if deck.showing_back else deck.card.front
        style = "" if deck.showing_back else "font-size:1.4em;font-weight:bold"
        self._card.value = (f"<div class='lk-card-{side}' style='{style}'>"
                            f"{inline_markup(text)}</div>")
        self._position.value = f"card {deck.position + 1} of {len(deck.cards)} ({side})"

    def text(self) -> str:
        lines = [f"{self.title}: {len(self.deck.cards)} cards"]
        lines += [f"- {c.front}: {c.back}" for c in self.deck.cards]
        return "\n".join(lines)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        bundle = self.widget._repr_mimebundle_()
        bundle["text/plain"] = self.text()
        return bundle


class Glossary:
    """Search the course's terms. ``Glossary.from_file("quizzes/glossary.yaml")``."""

    def __init__(self, entries: list[Entry]):
        self.entries = list(entries)
        self._widget: widgets.VBox | None = None

    @classmethod
    def from_file(cls, path: Path | str) -> Glossary:
        return cls(load_glossary(path))

    def lookup(self, term: str) -> Entry:
        wanted = normalise_text(term)
        for entry in self.entries:
            if wanted in {normalise_text(n) for n in (entry.term, *entry.aliases)}:
                return entry
        raise KeyError(f"{term!r} is not in the glossary. Try glossary.search({term!r}).")

    def search(self, text: str) -> list[Entry]:
        """Entries whose term, aliases or definition contain ``text`` (terms matches first)."""
        wanted = normalise_text(text)
        by_name = [e for e in self.entries
                   if any(wanted in normalise_text(n) for n in (e.term, *e.aliases))]
        by_text = [e for e in self.entries
                   if e not in by_name and wanted in normalise_text(e.definition)]
        return by_name + by_text

    def entry_html(self, entry: Entry) -> str:
        see = (f"<br><i>See also:</i> {html.escape(', '.join(entry.see_also))}"
               if entry.see_also else "")
        taught = f"<br><i>Taught in:</i> {html.escape(entry.lesson)}" if entry.lesson else ""
        return (f"<b>{html.escape(entry.term)}</b>: {inline_markup(entry.definition)}"
                f"{see}{taught}")

    @property
    def widget(self) -> widgets.VBox:
        if self._widget is None:
            self._search = widgets.Text(placeholder="search the glossary")
            self._search.add_class("lk-glossary-search")
            self._terms = widgets.Select(options=[e.term for e in self.entries], rows=8)
            self._terms.add_class("lk-glossary-terms")
            self._entry = widgets.HTML(layout=widgets.Layout(width="36em"))
            self._entry.add_class("lk-glossary-entry")
            self._search.observe(lambda change: self._filter(change["new"]), names="value")
            self._terms.observe(lambda change: self._select(change["new"]), names="value")
            self._widget = widgets.VBox([self._search, widgets.HBox([self._terms, self._entry])])
            self._widget.add_class("lk-glossary")
            self._select(self._terms.value)
        return self._widget

    def _filter(self, text: str) -> None:
        matches = self.search(text) if text.strip() else self.entries
        self._terms.options = [e.term for e in matches]
        self._select(self._terms.value)

    def _select(self, term: str | None) -> None:
        self._entry.value = (self.entry_html(self.lookup(term)) if term else
                             "<i>No term matches.</i>" if not self._terms.options else "")

    def text(self) -> str:
        return "Glossary\n" + "\n".join(f"- {e.term}: {e.definition}" for e in self.entries)

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        bundle = self.widget._repr_mimebundle_()
        bundle["text/plain"] = self.text()
        return bundle
