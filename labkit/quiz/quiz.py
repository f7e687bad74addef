"""The widgets ``Quiz``, ``Flashcards`` and ``Glossary``: stock ipywidgets 8, or text (lesson 00).

A quiz button calls what a learner can call in code (``quiz.answer``, ``quiz.hint``,
``quiz.reveal``). Every part carries a CSS class (``lk-quiz``, ``lk-check`` ...) for browser
tests. Where no widget can be drawn (papermill, nbval) the ``text/plain`` part is readable text.
"""

import html
import random
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from labkit.quiz.bank import Bank, Entry, load_bank, load_glossary
from labkit.quiz.grading import (CodeExercise, Feedback, MultipleChoice, Numeric, Ordering,
                                 Question, SingleChoice, normalise_text)
from labkit.quiz.store import RESULTS_ENV, QuizSession, ResultsStore, Score

# Stock RadioButtons and Checkbox draw a choice on one line of fixed height, so a long choice
# hid its control. Here it wraps beside its control; `order` puts a radio button before its text.
CHOICE_CSS = """
.lk-choices .widget-radio-box label, .lk-choice label.widget-label-basic {
  display: flex; align-items: flex-start; height: auto; overflow: visible;
  white-space: normal; overflow-wrap: anywhere; line-height: 20px; margin-bottom: 4px;
}
.lk-choices .widget-radio-box input, .lk-choice input[type='checkbox'] {
  order: -1; float: none; flex: none; align-self: flex-start; height: 20px;
  line-height: 20px; margin: 0 8px 0 1px;
}
.lk-choice.widget-checkbox { height: auto; width: auto; }
.lk-choices .widget-radio-box { margin-bottom: 0; }
"""
FORMS = {"single": "one choice", "multiple": "choose all that apply", "numeric": "a number",
         "text": "a word or short phrase", "order": "put in order",
         "code": "a code exercise, graded by a checker"}


def inline_markup(text: str) -> str:
    """Escaped HTML, with `backticks` as <code>: enough Markdown for prompts and feedback."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))


def css_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)


def classed(widget: widgets.Widget, *classes: str) -> widgets.Widget:
    for name in classes:
        widget.add_class(name)
    return widget


class AnswerInput:
    """The input part of a question: a widget, and its value as an answer for grading."""

    def __init__(self, question: Question):
        self.question, self.boxes = question, {}
        self.order = list(question.display_order) if isinstance(question, Ordering) else []
        auto = widgets.Layout(width="auto")  # the default width cuts long choices short
        if isinstance(question, SingleChoice):
            self.widget = widgets.RadioButtons(
                options=[(c.label, c.id) for c in question.choices], value=None, layout=auto)
        elif isinstance(question, MultipleChoice):
            self.boxes = {c.id: classed(widgets.Checkbox(description=c.label, indent=False,
                                                         layout=auto), "lk-choice")
                          for c in question.choices}
            self.widget = widgets.VBox(list(self.boxes.values()))
        elif isinstance(question, Ordering):
            self.widget = widgets.VBox()
            self._draw_order()
        elif isinstance(question, CodeExercise):
            self.widget = widgets.HTML(f"Hand your object to the checker in a code cell: "
                                       f"<code>{question.example_call()}</code>")
        else:
            unit = f" in {question.unit}" if isinstance(question, Numeric) and question.unit else ""
            self.widget = widgets.Text(placeholder=("a number" + unit) if isinstance(
                question, Numeric) else "your answer", layout=widgets.Layout(width="24em"))
        classed(self.widget, "lk-choices" if isinstance(question, (SingleChoice, MultipleChoice))
                else "lk-input")

    def _draw_order(self) -> None:
        by_id, rows = {c.id: c for c in self.question.items}, []
        for position, item_id in enumerate(self.order):
            buttons = []
            for text, css, step in (("↑", "lk-up", -1), ("↓", "lk-down", +1)):
                # flex none: a long item would otherwise squeeze the buttons out of line
                button = classed(widgets.Button(description=text, layout=widgets.Layout(
                    width="3em", flex="none")), css)
                button.on_click(lambda _, p=position, s=step: self._move(p, s))
                buttons.append(button)
            # HTML, not Label: a Label cuts long text short with an ellipsis.
            text = html.escape(f"{position + 1}. {by_id[item_id].label}")
            rows.append(widgets.HBox([*buttons, classed(widgets.HTML(text), "lk-order-item")]))
        self.widget.children = rows

    def _move(self, position: int, step: int) -> None:
        other = position + step
        if 0 <= other < len(self.order):
            self.order[position], self.order[other] = self.order[other], self.order[position]
            self._draw_order()

    def value(self) -> Any:
        if isinstance(self.question, SingleChoice):
            return self.widget.value or ""
        if isinstance(self.question, MultipleChoice):
            return [i for i, box in self.boxes.items() if box.value]
        return list(self.order) if isinstance(self.question, Ordering) else self.widget.value

    def show(self, answer: Any) -> None:
        """Put a saved answer back into the input, after a kernel restart."""
        question = self.question
        if isinstance(question, SingleChoice) and answer in dict(self.widget.options).values():
            self.widget.value = answer
        elif isinstance(question, MultipleChoice) and isinstance(answer, list):
            for choice_id, box in self.boxes.items():
                box.value = choice_id in answer
        elif isinstance(question, Ordering) and isinstance(answer, list) \
                and sorted(answer) == sorted(self.order):
            self.order = list(answer)
            self._draw_order()
        elif isinstance(self.widget, widgets.Text) and answer is not None:
            self.widget.value = f"{answer:g}" if isinstance(answer, float) else str(answer)

    def disable(self, disabled: bool) -> None:
        rows = self.widget.children if isinstance(self.question, Ordering) else []
        for part in [*self.boxes.values(), *(b for row in rows for b in row.children[:2]),
                     self.widget]:
            if hasattr(part, "disabled"):
                part.disabled = disabled


class QuestionView:
    """One question's widgets; ``show`` draws them from the session's state."""

    def __init__(self, quiz: "Quiz", question: Question, number: int):
        self.quiz, self.question = quiz, question
        prompt = f"<b>{number}.</b> {inline_markup(question.prompt)}"
        self.prompt = classed(widgets.HTMLMath(prompt), "lk-prompt")
        self.input = AnswerInput(question)
        self.attempts = classed(widgets.Label(), "lk-attempts")
        self.hints = classed(widgets.HTML(), "lk-hints")
        self.feedback = classed(widgets.HTML(), "lk-feedback")
        self.check, self.hint, self.reveal = (
            self._button("Check", "lk-check", isinstance(question, CodeExercise),
                         lambda: quiz.answer(question.id, self.input.value()), "primary"),
            self._button("Hint", "lk-hint", not question.hints, lambda: quiz.hint(question.id)),
            self._button("Show answer", "lk-reveal", question.max_attempts is None,
                         lambda: quiz.reveal(question.id)))
        buttons = widgets.HBox([self.check, self.hint, self.reveal, self.attempts])
        self.box = classed(widgets.VBox([self.prompt, self.input.widget, buttons, self.hints,
                                         self.feedback]),
                           "lk-question", f"lk-question-{css_name(question.id)}")
        self.input.show(quiz.session.progress[question.id].answer)

    def _button(self, text: str, css: str, hidden: bool, action, style: str = ""):
        def clicked(_):
            # A failing callback would vanish into the kernel log: show it to the learner.
            try:
                action()
            except Exception as error:  # noqa: BLE001
                self.show(Feedback("invalid", f"Something went wrong: {type(error).__name__}: "
                                              f"{error}"))
        button = classed(widgets.Button(description=text, button_style=style), css)
        button.layout.display = "none" if hidden else None
        button.on_click(clicked)
        return button

    def show(self, feedback: Feedback | None) -> None:
        if feedback is not None:
            details = "".join(f"<li>{inline_markup(d)}</li>" for d in feedback.details)
            self.feedback.value = (
                f"<div class='lk-verdict lk-{feedback.status}'>{inline_markup(feedback.message)}"
                f"</div>" + (f"<ul class='lk-details'>{details}</ul>" if details else ""))
            for name in ("lk-correct", "lk-wrong", "lk-invalid", "lk-closed", "lk-revealed"):
                self.feedback.remove_class(name)
            self.feedback.add_class(f"lk-{feedback.status}")
        session, question = self.quiz.session, self.question
        state = session.progress[question.id]
        self.attempts.value = f"attempts: {state.attempts}" + (
            f" of {question.max_attempts}" if question.max_attempts is not None else "")
        closed, left = session.is_closed(question), session.attempts_left(question)
        self.check.disabled = closed
        self.input.disable(closed)
        self.reveal.disabled = state.revealed or state.correct or left != 0
        self.hint.disabled = state.hints >= len(question.hints)
        self.hints.value = "".join(f"<div>💡 {inline_markup(h)}</div>"
                                   for h in question.hints[:state.hints])


class Quiz:
    """A bank and a learner's progress, as widgets or text: ``Quiz.from_file(path)``; lesson 00."""

    def __init__(self, bank: Bank, *, results_path: Path | str | None = None):
        self.bank = bank
        self.session = QuizSession(bank, ResultsStore(results_path))
        self._views: dict[str, QuestionView] = {}
        self._widget: widgets.VBox | None = None

    @classmethod
    def from_file(cls, path: Path | str, *, results_path: Path | str | None = None) -> "Quiz":
        return cls(load_bank(path), results_path=results_path)

    @property
    def results_path(self) -> Path:
        return self.session.store.path

    def answer(self, question_id: str, value: Any) -> Feedback:
        """Grade ``value`` as the answer to ``question_id``, save it, and return feedback."""
        return self._show(question_id, self.session.submit(question_id, value))

    def reveal(self, question_id: str) -> Feedback:
        return self._show(question_id, self.session.reveal(question_id))

    def hint(self, question_id: str) -> str:
        hint = self.session.next_hint(question_id)
        self._show(question_id, None)
        return hint if hint is not None else "No more hints for this question."

    def score(self) -> Score:
        return self.session.score()

    def _show(self, question_id: str, feedback: Feedback | None) -> Feedback | None:
        if question_id in self._views:
            self._views[question_id].show(feedback)
            self._refresh_footer()
        return feedback

    @property
    def widget(self) -> widgets.VBox:
        if self._widget is None:
            style = classed(widgets.HTML(f"<style>{CHOICE_CSS}</style>", layout=widgets.Layout(
                display="none")), "lk-style")  # invisible; its rules apply to the whole page
            title = classed(widgets.HTML(f"<h3>{inline_markup(self.bank.title)}</h3>"),
                            "lk-quiz-title")
            for number, question in enumerate(self.bank.questions, start=1):
                view = self._views[question.id] = QuestionView(self, question, number)
                state = self.session.progress[question.id]
                view.show(Feedback(state.status, state.feedback, tuple(state.details))
                          if state.status else None)
            self._score = classed(widgets.HTML(), "lk-score")
            self._notes = classed(widgets.HTML(), "lk-results-note")
            self._widget = classed(
                widgets.VBox([style, title, *(v.box for v in self._views.values()),
                              self._score, self._notes]),
                "lk-quiz", f"lk-quiz-{css_name(self.bank.id)}")
            self._refresh_footer()
        return self._widget

    def _refresh_footer(self) -> None:
        self._score.value = f"<b>{inline_markup(str(self.score()))}</b>"
        notes = "".join(f"<div style='color:#cf222e'>{inline_markup(n)}</div>"
                        for n in self.session.store.notes)
        self._notes.value = notes + (f"<small>Answers are saved to <code>"
                                     f"{inline_markup(str(self.results_path))}</code>.</small>")

    def text(self) -> str:
        """Every question, the call that answers it, the score and where answers are saved."""
        bank, session = self.bank, self.session
        helps = ['quiz.hint("<id>") gives a hint'] if any(q.hints for q in bank.questions) else []
        if any(q.max_attempts is not None for q in bank.questions):
            helps.append('quiz.reveal("<id>") shows the answer once your attempts are used')
        lines = [f"{bank.title} [{bank.id}]: {len(bank.questions)} questions. {self.score()}",
                 'No widgets here: answer in a code cell with quiz.answer("<question id>", '
                 '<answer>).' + (f" {'; '.join(helps)}." if helps else ""),
                 f"Answers are saved to {self.results_path} (set {RESULTS_ENV} to change where).",
                 *(f"Note: {note}" for note in session.store.notes)]
        for number, question in enumerate(bank.questions, start=1):
            form = FORMS[question.kind]
            if isinstance(question, Numeric) and question.unit:
                form += f", in {question.unit}"
            lines += ["", *textwrap.wrap(f"{number}. [{question.id}] {question.prompt} ({form})",
                                         width=96, subsequent_indent="   ")]
            if isinstance(question, (SingleChoice, MultipleChoice)):
                lines += [f"     {c.id}) {c.text}" for c in question.choices]
            elif isinstance(question, Ordering):
                by_id = {c.id: c for c in question.items}
                lines += [f"     {i}) {by_id[i].text}" for i in question.display_order]
            lines.append(f"   -> {question.example_call()}")
            state, left = session.progress[question.id], session.attempts_left(question)
            if state.correct:
                lines.append(f"   (answered correctly ({state.attempts} "
                             f"attempt{'s' if state.attempts != 1 else ''}))")
            elif state.revealed:
                lines.append("   (answer shown)")
            elif state.attempts:
                lines.append(f"   ({state.attempts} wrong so far"
                             + (f", {left} left)" if left is not None else ")"))
        if any(isinstance(q, CodeExercise) for q in bank.questions):
            lines += ["", 'Code exercises: hand your object to its checker, e.g. '
                          'quiz.answer("<id>", model).']
        return "\n".join(lines)

    __str__ = text

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        return {**self.widget._repr_mimebundle_(), "text/plain": self.text()}


@dataclass(frozen=True)
class Card:
    front: str
    back: str


class Flashcards:
    """Flip, previous, next, shuffle: ``Flashcards.for_lesson(glossary, lesson)``; lesson 00."""

    def __init__(self, cards: list[Card], *, title: str = "Flashcards"):
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

    _repr_mimebundle_ = Quiz._repr_mimebundle_


class Glossary:
    """The terms as one table: ``Glossary.from_file("quizzes/glossary.yaml")``; lesson 00."""

    def __init__(self, entries: list[Entry]):
        self.entries = list(entries)

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
    def widget(self) -> widgets.HTML:
        rows = "".join(f"<tr><td><b>{html.escape(e.term)}</b></td><td>{inline_markup(e.definition)}"
                       + (f"<br><i>See also:</i> {html.escape(', '.join(e.see_also))}"
                          if e.see_also else "") + f"<br><i>Lesson:</i> {e.lesson}</td></tr>"
                       for e in self.entries)
        return classed(widgets.HTML(
            "<style>.lk-glossary td {text-align: left; vertical-align: top; line-height: 1.4}"
            f".lk-glossary td + td {{overflow-wrap: anywhere}}</style><table>{rows}</table>",
            layout=widgets.Layout(width="auto")), "lk-glossary")

    def text(self) -> str:
        return "Glossary\n" + "\n".join(f"- {e.term}: {e.definition}" for e in self.entries)

    _repr_mimebundle_ = Quiz._repr_mimebundle_
