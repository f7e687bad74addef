"""The quiz in a notebook: plain ipywidgets 8 over a ``QuizSession``.

The layer is thin on purpose. A button calls the same method a learner can call in code
(``quiz.answer``, ``quiz.hint``, ``quiz.reveal``) and then redraws from the session, so what
the page shows is always what the kernel graded and saved. Feedback lives in widget values
(HTML, Label), not in printed output, so tests can read it; every part carries a stable CSS
class (``lk-quiz``, ``lk-question-<id>``, ``lk-check``, ``lk-feedback`` plus ``lk-correct`` or
``lk-wrong``, ``lk-score`` ...) for browser tests. Only stock widgets are used, so the quiz
works wherever ipywidgets 8 does.

Stock RadioButtons and Checkbox draw each choice on one line of fixed height: a choice longer
than the cell's width overflowed onto the next one and hid its own radio button. The quiz
therefore carries a small style sheet (``CHOICE_CSS``, scoped to ``lk-`` classes) that lets a
choice's text wrap beside its control, level with the first line. Every choice of a question
is drawn by the same widget with the same classes: nothing about its look depends on whether
it is correct. Where a frontend drops the style sheet, the choices look as stock ipywidgets
draw them, and the text fallback (``quiz.text()``) still lists every choice in full.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from labkit.quiz.bank import Bank, load_bank
from labkit.quiz.grading import (CodeExercise, MultipleChoice, Numeric, Ordering, Question,
                                 SingleChoice)
from labkit.quiz.plain import quiz_text
from labkit.quiz.session import Feedback, QuizSession, Score, inline_markup
from labkit.quiz.store import ResultsStore

__all__ = ["Quiz"]

STATUS_CLASSES = ("lk-correct", "lk-wrong", "lk-invalid", "lk-closed", "lk-revealed")

# Choices wrap beside their control. The control is as tall as one line of text and sits at
# the top, so it stays level with the first line however many lines the text takes. A radio
# button comes after its text in the page (stock CSS floats it left): `order` puts it first.
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


def style_sheet() -> widgets.HTML:
    """The quiz's style sheet as a widget: invisible, yet its rules apply to the whole page."""
    return _classed(widgets.HTML(f"<style>{CHOICE_CSS}</style>",
                                 layout=widgets.Layout(display="none")), "lk-style")


def css_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", text)


def _classed(widget: widgets.Widget, *classes: str) -> widgets.Widget:
    for name in classes:
        widget.add_class(name)
    return widget


def _label(choice) -> str:
    return f"{choice.id}) {choice.text.replace('`', '')}"


class AnswerInput:
    """The input part of a question: a widget, and its value as an answer for grading."""

    def __init__(self, question: Question, hand_in: str):
        self.question = question
        self.order = list(question.display_order) if isinstance(question, Ordering) else []
        if isinstance(question, SingleChoice):
            self.widget = widgets.RadioButtons(
                options=[(_label(c), c.id) for c in question.choices], value=None,
                layout=widgets.Layout(width="auto"))
        elif isinstance(question, MultipleChoice):
            # width auto: the default width would cut long choices short with an ellipsis.
            self.boxes = {c.id: _classed(widgets.Checkbox(description=_label(c), indent=False,
                                                          layout=widgets.Layout(width="auto")),
                                         "lk-choice") for c in question.choices}
            self.widget = widgets.VBox(list(self.boxes.values()))
        elif isinstance(question, Ordering):
            self.widget = widgets.VBox()
            self._draw_order()
        elif isinstance(question, CodeExercise):
            self.widget = widgets.HTML(f"Hand your object to the checker in a code cell: "
                                       f"<code>{hand_in}</code>")
        else:
            unit = f" in {question.unit}" if isinstance(question, Numeric) and question.unit else ""
            self.widget = widgets.Text(placeholder=("a number" + unit) if isinstance(
                question, Numeric) else "your answer", layout=widgets.Layout(width="24em"))
        _classed(self.widget, "lk-choices" if isinstance(question, (SingleChoice, MultipleChoice))
                 else "lk-input")

    def _draw_order(self) -> None:
        by_id = {c.id: c for c in self.question.items}
        rows = []
        for position, item_id in enumerate(self.order):
            # flex none: a long item would otherwise squeeze its row's buttons out of line.
            up = _classed(widgets.Button(description="↑", layout=widgets.Layout(
                width="3em", flex="none")), "lk-up")
            down = _classed(widgets.Button(description="↓", layout=widgets.Layout(
                width="3em", flex="none")), "lk-down")
            up.on_click(lambda _, p=position: self._move(p, -1))
            down.on_click(lambda _, p=position: self._move(p, +1))
            # HTML, not Label: a Label cuts long text short with an ellipsis.
            text = html.escape(f"{position + 1}. {_label(by_id[item_id])}")
            label = _classed(widgets.HTML(text), "lk-order-item")
            rows.append(widgets.HBox([up, down, label]))
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
        if isinstance(self.question, Ordering):
            return list(self.order)
        return self.widget.value

    def show(self, answer: Any) -> None:
        """Put a saved answer back into the input, after a kernel restart."""
        if answer is None or isinstance(self.question, CodeExercise):
            return
        if isinstance(self.question, SingleChoice) and answer in dict(self.widget.options).values():
            self.widget.value = answer
        elif isinstance(self.question, MultipleChoice) and isinstance(answer, list):
            for choice_id, box in self.boxes.items():
                box.value = choice_id in answer
        elif isinstance(self.question, Ordering) and isinstance(answer, list) \
                and sorted(answer) == sorted(self.order):
            self.order = list(answer)
            self._draw_order()
        elif isinstance(self.widget, widgets.Text):
            self.widget.value = f"{answer:g}" if isinstance(answer, float) else str(answer)

    def disable(self, disabled: bool) -> None:
        parts = (list(self.boxes.values()) if isinstance(self.question, MultipleChoice) else
                 [b for row in self.widget.children for b in row.children[:2]]
                 if isinstance(self.question, Ordering) else [self.widget])
        for part in parts:
            if hasattr(part, "disabled"):
                part.disabled = disabled


class QuestionView:
    """One question's widgets; ``refresh`` draws them from the session's state."""

    def __init__(self, quiz: Quiz, question: Question, number: int):
        self.quiz, self.question = quiz, question
        prompt = f"<b>{number}.</b> {inline_markup(question.prompt)}"
        if question.code:
            prompt += f"<pre>{html.escape(question.code)}</pre>"
        self.prompt = _classed(widgets.HTMLMath(prompt), "lk-prompt")
        self.input = AnswerInput(question, question.example_call(quiz.name))
        self.check = _classed(widgets.Button(description="Check", button_style="primary"),
                              "lk-check")
        self.hint = _classed(widgets.Button(description="Hint"), "lk-hint")
        self.reveal = _classed(widgets.Button(description="Show answer"), "lk-reveal")
        self.attempts = _classed(widgets.Label(), "lk-attempts")
        self.hints = _classed(widgets.HTML(), "lk-hints")
        self.feedback = _classed(widgets.HTML(), "lk-feedback")
        self.check.on_click(lambda _: self._guarded(self._on_check))
        self.hint.on_click(lambda _: self._guarded(self._on_hint))
        self.reveal.on_click(lambda _: self._guarded(self._on_reveal))
        if isinstance(question, CodeExercise):
            self.check.layout.display = "none"
        if not question.hints:
            self.hint.layout.display = "none"
        if question.max_attempts is None:
            self.reveal.layout.display = "none"
        buttons = widgets.HBox([self.check, self.hint, self.reveal, self.attempts])
        self.box = _classed(widgets.VBox([self.prompt, self.input.widget, buttons, self.hints,
                                          self.feedback]),
                            "lk-question", f"lk-question-{css_name(question.id)}")
        self.input.show(quiz.session.progress[question.id].answer)

    def _guarded(self, action) -> None:
        # A failing callback would otherwise vanish into the kernel log; show it instead.
        try:
            action()
        except Exception as error:  # noqa: BLE001 - shown to the learner, not swallowed
            self.show(Feedback(self.question.id, "invalid",
                               f"Something went wrong: {type(error).__name__}: {error}"))

    def _on_check(self) -> None:
        self.quiz.answer(self.question.id, self.input.value())

    def _on_hint(self) -> None:
        self.quiz.hint(self.question.id)

    def _on_reveal(self) -> None:
        self.quiz.reveal(self.question.id)

    def show(self, feedback: Feedback | None) -> None:
        if feedback is not None:
            self.feedback.value = feedback.html()
            for name in STATUS_CLASSES:
                self.feedback.remove_class(name)
            self.feedback.add_class(f"lk-{feedback.status}")
        self.refresh()

    def refresh(self) -> None:
        session, question = self.quiz.session, self.question
        state = session.progress[question.id]
        left = session.attempts_left(question)
        self.attempts.value = (f"attempts: {state.attempts}" if left is None else
                               f"attempts: {state.attempts} of {question.max_attempts}")
        closed = session.is_closed(question)
        self.check.disabled = closed
        self.input.disable(closed)
        self.reveal.disabled = not session.can_reveal(question)
        self.hint.disabled = state.hints >= len(question.hints)
        shown = session.shown_hints(question.id)
        self.hints.value = "".join(f"<div>💡 {inline_markup(h)}</div>" for h in shown)


class Quiz:
    """A quiz bank with a learner's progress, shown as widgets or, without a frontend, as text.

    ``Quiz.from_file("quizzes/00_start_here.yaml")`` in a notebook; leave it as the last line
    of a cell to show it. ``name`` is the variable it is assigned to, used in the text that
    tells a learner how to answer in code.
    """

    def __init__(self, bank: Bank, *, results_path: Path | str | None = None,
                 name: str = "quiz"):
        self.bank, self.name = bank, name
        self.session = QuizSession(bank, ResultsStore(results_path))
        self._views: dict[str, QuestionView] = {}
        self._widget: widgets.VBox | None = None

    @classmethod
    def from_file(cls, path: Path | str, *, results_path: Path | str | None = None,
                  name: str = "quiz") -> Quiz:
        return cls(load_bank(path), results_path=results_path, name=name)

    @property
    def results_path(self) -> Path:
        return self.session.store.path

    # --- what a learner calls -------------------------------------------------------------

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

    # --- display ------------------------------------------------------------------------------

    @property
    def widget(self) -> widgets.VBox:
        if self._widget is None:
            title = _classed(widgets.HTML(f"<h3>{inline_markup(self.bank.title)}</h3>"),
                             "lk-quiz-title")
            for number, question in enumerate(self.bank.questions, start=1):
                view = QuestionView(self, question, number)
                self._views[question.id] = view
                view.show(self._saved_feedback(question))
            self._score = _classed(widgets.HTML(), "lk-score")
            self._notes = _classed(widgets.HTML(), "lk-results-note")
            self._widget = _classed(
                widgets.VBox([style_sheet(), title, *(v.box for v in self._views.values()),
                              self._score, self._notes]),
                "lk-quiz", f"lk-quiz-{css_name(self.bank.id)}")
            self._refresh_footer()
        return self._widget

    def _saved_feedback(self, question: Question) -> Feedback | None:
        state = self.session.progress[question.id]
        if not state.status:
            return None
        return Feedback(question.id, state.status, state.feedback, tuple(state.details),
                        state.attempts, question.max_attempts)

    def _refresh_footer(self) -> None:
        if self._widget is None:
            return
        self._score.value = f"<b>{inline_markup(str(self.score()))}</b>"
        notes = [f"<div style='color:#cf222e'>{inline_markup(n)}</div>"
                 for n in self.session.store.notes]
        self._notes.value = "".join(notes) + (f"<small>Answers are saved to "
                                              f"<code>{inline_markup(str(self.results_path))}"
                                              f"</code>.</small>")

    def text(self) -> str:
        return quiz_text(self.session, name=self.name)

    __str__ = text

    def _repr_mimebundle_(self, include=None, exclude=None) -> dict:
        # Frontends with widgets draw the widget; everything else shows the text/plain part.
        bundle = self.widget._repr_mimebundle_()
        bundle["text/plain"] = self.text()
        return bundle
