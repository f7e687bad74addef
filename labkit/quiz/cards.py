"""Flashcards and a glossary, fed from data files beside the notebooks.

A glossary file (``quizzes/glossary.yaml``)::

    id: glossary
    terms:
      - term: fine-tuning
        definition: Training some or all of a pre-trained network's layers on your data ...
        lesson: 06_fine_tuning         # the notebook (name without .ipynb) that teaches it
        aliases: [finetuning]          # optional: other spellings that find the entry
        see_also: [feature extraction] # optional: must be terms of this glossary

A deck of flashcards (``quizzes/<lesson>.cards.yaml``)::

    id: 00_start_here_cards
    title: Words of the course
    cards:
      - {front: ..., back: ...}

``Flashcards.from_glossary`` turns glossary entries into cards (term in front),
``Flashcards.for_lesson`` the terms one lesson teaches, and ``Flashcards.review`` every term of
the course, spaced out so that cards of one lesson do not follow each other. As with quiz
banks, the files are read with ``yaml.safe_load`` and every problem names the file, the entry
and the field. The state (which card, which side) is a plain ``Deck``; the widgets only draw it.
"""

from __future__ import annotations

import html
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as widgets

from labkit.quiz.bank import BankError, Problem, read_data_file
from labkit.quiz.parsing import normalise_text
from labkit.quiz.session import inline_markup

__all__ = ["Card", "Deck", "Entry", "load_glossary", "load_deck", "Flashcards", "Glossary"]


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


LESSON_PATTERN = re.compile(r"\d\d_[A-Za-z0-9_]+")
LESSON_FIX = ("name the notebook that teaches the term, without .ipynb, e.g. "
              "lesson: 05_feature_extraction.")


def _problems_in(items, field_name: str, item: str,
                 fields: dict[str, bool | None]) -> tuple[list[dict], list[Problem]]:
    """The well-formed mappings of a list, and a Problem for everything else.

    ``fields`` maps each allowed field to whether it is required (a non-empty string);
    optional fields are lists of strings; None: allowed, and checked by the caller.
    """
    problems, good = [], []
    if not isinstance(items, list) or not items:
        return [], [Problem("", field_name, f"must be a non-empty list of {item} entries.",
                            item)]
    for i, raw in enumerate(items):
        if not isinstance(raw, dict):
            problems.append(Problem(f"#{i + 1}", "(entry)", "must be a mapping of fields.", item))
            continue
        label = raw.get("term") or raw.get("front")  # entries are named by what they show
        name = repr(label) if label else f"#{i + 1}"
        found = []
        for key in raw:
            if key not in fields:
                found.append(Problem(name, str(key), f"unknown field; known fields: "
                                                     f"{', '.join(fields)}.", item))
        for key, required in fields.items():
            value = raw.get(key)
            if required and (not isinstance(value, str) or not value.strip()):
                found.append(Problem(name, key, "missing or empty: give it some text.", item))
            if required is False and value is not None and not (
                    isinstance(value, list) and all(isinstance(v, str) for v in value)):
                found.append(Problem(name, key, "must be a list of strings.", item))
        problems += found
        if not found:
            good.append(raw)
    return good, problems


def load_glossary(path: Path | str) -> list[Entry]:
    path = Path(path)
    data = read_data_file(path, "glossary")
    if not isinstance(data, dict):
        raise BankError(path, [Problem("", "(file)", "must hold a mapping with terms.")],
                        "glossary")
    raws, problems = _problems_in(data.get("terms"), "terms", "term",
                                  {"term": True, "definition": True, "lesson": None,
                                   "aliases": False, "see_also": False})
    entries = [Entry(r["term"], r["definition"], tuple(r.get("aliases", [])),
                     tuple(r.get("see_also", [])), r.get("lesson")) for r in raws]
    for entry in entries:  # every term names the lesson that teaches it
        if not isinstance(entry.lesson, str) or not LESSON_PATTERN.fullmatch(entry.lesson):
            why = ("missing" if entry.lesson is None else
                   f"{entry.lesson!r} is not a lesson's name")
            problems.append(Problem(repr(entry.term), "lesson", f"{why}. Fix: {LESSON_FIX}",
                                    "term"))
    known = {normalise_text(n) for e in entries for n in (e.term, *e.aliases)}
    terms = [normalise_text(e.term) for e in entries]
    for twice in sorted({t for t in terms if terms.count(t) > 1}):
        problems.append(Problem(repr(twice), "term", "appears more than once.", "term"))
    for entry in entries:
        for other in entry.see_also:
            if normalise_text(other) not in known:
                problems.append(Problem(repr(entry.term), "see_also", f"{other!r} is not a term "
                                        f"of this glossary. Fix: add it, or correct the name.",
                                        "term"))
    if problems:
        raise BankError(path, problems, "glossary")
    return sorted(entries, key=lambda e: normalise_text(e.term))


def load_deck(path: Path | str) -> tuple[str, list[Card]]:
    """(title, cards) of a flashcard deck file."""
    path = Path(path)
    data = read_data_file(path, "deck")
    if not isinstance(data, dict):
        raise BankError(path, [Problem("", "(file)", "must hold a mapping with cards.")], "deck")
    raws, problems = _problems_in(data.get("cards"), "cards", "card",
                                  {"front": True, "back": True})
    if problems:
        raise BankError(path, problems, "deck")
    return str(data.get("title", path.stem)), [Card(r["front"], r["back"]) for r in raws]


@dataclass
class Deck:
    """Which card is up and which side shows. ``order`` is a permutation of card indices."""
    cards: list[Card]
    order: list[int] = field(default_factory=list)
    position: int = 0
    showing_back: bool = False

    def __post_init__(self) -> None:
        if not self.cards:
            raise ValueError("a deck needs at least one card. Fix: add cards to the deck file.")
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
    def from_file(cls, path: Path | str) -> Flashcards:
        title, cards = load_deck(path)
        return cls(cards, title=title)

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
