"""The quiz, flashcard and glossary widgets driven from Python, and the code-exercise checker.

Widgets are set and clicked the way the frontend would (``value = ...``, ``button.click()``);
the tests then read feedback from widget values and CSS classes, the score, and the saved file.
"""

import html
import json

import pytest
import torch
from torch import nn
from torchvision.models import ResNet18_Weights, resnet18

from labkit.quiz import BankError, Flashcards, Glossary, Quiz
from labkit.quiz.bank import load_bank, load_glossary, parse_bank
from labkit.quiz.quiz import Card, QuestionView
from labkit.transfer import freeze_backbone, replace_head

from conftest import ROOT

QUIZZES = ROOT / "notebooks" / "quizzes"
START_BANK = QUIZZES / "00_start_here.yaml"
GLOSSARY = QUIZZES / "glossary.yaml"


@pytest.fixture
def quiz(tmp_path):
    quiz = Quiz.from_file(START_BANK, results_path=tmp_path / "results.json")
    quiz.widget  # built as the notebook would when displaying it
    return quiz


def view(quiz, question_id) -> QuestionView:
    return quiz._views[question_id]


def classes(widget):
    return set(widget._dom_classes)


def saved(quiz):
    return json.loads(quiz.results_path.read_text(encoding="utf-8"))["quizzes"][quiz.bank.id]


def right_and_wrong(question):
    right = next(c for c in question.choices if c.correct)
    wrong = next(c for c in question.choices if not c.correct)
    return right, wrong


def test_wrong_then_right_shows_feedback_updates_score_and_saves(quiz):
    smoke = view(quiz, "smoke")
    right, wrong = right_and_wrong(quiz.bank.question("smoke"))
    smoke.input.widget.value = wrong.id
    smoke.check.click()
    assert "lk-wrong" in classes(smoke.feedback)
    assert wrong.explanation in smoke.feedback.value
    assert smoke.attempts.value == "attempts: 1 of 3"
    smoke.input.widget.value = right.id
    smoke.check.click()
    assert "lk-correct" in classes(smoke.feedback) and "lk-wrong" not in classes(smoke.feedback)
    assert smoke.check.disabled and smoke.input.widget.disabled
    total = sum(q.points for q in quiz.bank.questions)
    assert f"Score: 1 / {total:g}" in quiz._score.value
    record = saved(quiz)["questions"]["smoke"]
    assert (record["answer"], record["correct"], record["attempts"]) == (right.id, True, 2)
    assert saved(quiz)["score"] == 1


def test_every_question_type_is_answered_through_its_widgets(quiz):
    reuse = view(quiz, "reuse")
    for choice in quiz.bank.question("reuse").choices:
        reuse.input.boxes[choice.id].value = choice.correct
    reuse.check.click()
    gflop = view(quiz, "gflop")
    gflop.input.widget.value = "2000 MFLOP"
    gflop.check.click()
    tag = view(quiz, "tag")
    tag.input.widget.value = "  The Parameters tag "
    tag.check.click()
    steps, question = view(quiz, "steps"), quiz.bank.question("steps")
    target = [c.id for c in question.items]
    while steps.input.order != target:  # bubble the items into place with the ↑ buttons
        position = next(i for i, item in enumerate(steps.input.order) if item != target[i])
        row = steps.input.order.index(target[position])
        steps.input.widget.children[row].children[0].click()
    steps.check.click()
    for question_id in ("reuse", "gflop", "tag", "steps"):
        assert "lk-correct" in classes(view(quiz, question_id).feedback), question_id
    assert quiz.score().correct == 4


def test_an_unreadable_answer_is_explained_and_costs_no_attempt(quiz):
    gflop = view(quiz, "gflop")
    gflop.input.widget.value = "two"
    gflop.check.click()
    assert "lk-invalid" in classes(gflop.feedback) and "number" in gflop.feedback.value
    assert gflop.attempts.value == "attempts: 0 of 3"
    assert not quiz.results_path.exists()


def test_hints_then_reveal_after_the_attempts_are_used(quiz):
    tag = view(quiz, "tag")
    question = quiz.bank.question("tag")
    tag.hint.click()
    assert question.hints[0].split("`")[0] in tag.hints.value
    assert tag.hint.disabled  # this question has one hint
    assert tag.reveal.disabled
    for attempt in ("cell", "knob", "tag"):
        tag.input.widget.value = attempt
        tag.check.click()
    assert "No attempts left" in tag.feedback.value and not tag.reveal.disabled
    tag.reveal.click()
    assert "lk-revealed" in classes(tag.feedback) and question.solution() in tag.feedback.value
    assert tag.reveal.disabled and saved(quiz)["questions"]["tag"]["revealed"]
    assert quiz.score().points == 0


def test_answering_in_code_updates_the_widgets(quiz):
    feedback = quiz.answer("smoke", "c")
    assert feedback.status == "wrong" and "lk-wrong" in classes(view(quiz, "smoke").feedback)
    assert "attempts: 1 of 3" == view(quiz, "smoke").attempts.value


def test_a_restarted_kernel_shows_the_saved_state(quiz, tmp_path):
    right, _ = right_and_wrong(quiz.bank.question("smoke"))
    quiz.answer("smoke", right.id)
    again = Quiz.from_file(START_BANK, results_path=tmp_path / "results.json")
    again.widget
    smoke = view(again, "smoke")
    assert smoke.input.widget.value == right.id and smoke.check.disabled
    assert "lk-correct" in classes(smoke.feedback)
    assert again.score().points == 1


def test_a_corrupt_results_file_is_shown_under_the_quiz(tmp_path):
    path = tmp_path / "results.json"
    path.write_text("{oops")
    with pytest.warns(UserWarning):
        quiz = Quiz.from_file(START_BANK, results_path=path)
    note = quiz.widget.children[-1].value
    assert "could not be read" in note and "corrupt" in note
    quiz.answer("tag", "parameters")
    assert saved(quiz)["questions"]["tag"]["correct"]


def test_without_a_frontend_the_quiz_is_readable_text(quiz):
    bundle = quiz._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    text = bundle["text/plain"]
    for question in quiz.bank.questions:
        assert f'quiz.answer("{question.id}", ' in text
    assert "Feature extraction" in text and str(quiz.results_path) in text
    assert "VBox(" not in text
    assert "lk-question-smoke" in classes(view(quiz, "smoke").box)
    assert {"lk-quiz"} <= classes(quiz.widget)


LONG = "A choice long enough to wrap onto a second line in a laptop's window: " * 3


def test_long_and_right_choices_are_drawn_like_the_others(tmp_path):
    """Issue 23: the one long choice, the right one, was drawn without its radio button. Every
    choice is one widget of the same kind, classes and layout; the quiz brings the style sheet
    that wraps choices (the browser test, tests/test_quiz_browser.py, looks at the result)."""
    choices = [{"id": "a", "text": "Short."}, {"id": "b", "text": LONG, "correct": True},
               {"id": "c", "text": "Also short."}]
    bank = parse_bank({"id": "long", "questions": [
        {"id": "one", "type": "single", "prompt": "Pick", "choices": choices},
        {"id": "many", "type": "multiple", "prompt": "Pick", "choices": choices},
        {"id": "order", "type": "order", "prompt": "Order",
         "items": [{"id": c["id"], "text": c["text"]} for c in choices]}]})
    quiz = Quiz(bank, results_path=tmp_path / "r.json")
    quiz.widget
    single = view(quiz, "one").input.widget
    assert [label for label, _ in single.options][1] == f"b) {LONG}"  # in full, no ellipsis
    boxes = list(view(quiz, "many").input.boxes.values())
    assert len({(tuple(b._dom_classes), b.layout.width, b.indent) for b in boxes}) == 1
    items = [row.children[2] for row in view(quiz, "order").input.widget.children]
    assert all(type(item).__name__ == "HTML" for item in items)  # a Label cuts text short
    assert any(html.escape(LONG.strip()) in item.value for item in items)
    style = quiz.widget.children[0]
    assert "lk-style" in classes(style) and style.layout.display == "none"
    assert ".lk-choices .widget-radio-box label" in style.value and "white-space: normal" in \
        style.value


# --- code exercises ------------------------------------------------------------------------

def pretrained_frozen(model, num_classes=1000):
    """Lesson 01's checker, from the course's table (the quiz package never imports it)."""
    from labkit.exercises import CHECKERS
    return CHECKERS["pretrained_frozen"](model, num_classes=num_classes)


def seen_a_batch(model):
    """BatchNorm statistics that have seen images, as a pre-trained backbone's have."""
    with torch.no_grad():
        model.train()(torch.randn(2, 3, 64, 64))
    return model


def backbone_count(model):
    return sum(p.numel() for name, p in model.named_parameters() if not name.startswith("fc."))


def test_frozen_backbone_checker_reports_trainable_backbone_parameters():
    model = resnet18(weights=None)  # random weights: nothing is downloaded
    result = pretrained_frozen(model)
    count = backbone_count(model)
    fc = model.fc.in_features * model.fc.out_features + model.fc.out_features
    assert count == ResNet18_Weights.IMAGENET1K_V1.meta["num_params"] - fc
    assert not result.correct
    assert f"the backbone is still trainable: {count:,} parameters require grad" in \
        result.message.lower()


def test_frozen_backbone_checker_accepts_the_labkit_recipe_and_checks_classes():
    model = freeze_backbone(replace_head(seen_a_batch(resnet18(weights=None)), num_classes=3))
    head = sum(p.numel() for p in model.fc.parameters())
    result = pretrained_frozen(model, num_classes=3)
    assert result.correct and f"{head:,}" in result.message
    wrong = pretrained_frozen(model, num_classes=5)
    assert not wrong.correct and "replace_head(model, num_classes=5)" in wrong.message


def test_frozen_backbone_checker_targets_each_mistake():
    model = seen_a_batch(resnet18(weights=None))
    model.requires_grad_(False)
    assert "head is frozen too" in pretrained_frozen(model).message
    model.fc.requires_grad_(True)  # frozen by hand, so BatchNorm is still in train mode
    batchnorms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    result = pretrained_frozen(model)
    assert f"{batchnorms} frozen BatchNorm layers" in result.message and "train" in result.message
    model.eval()
    assert pretrained_frozen(model).correct
    assert "Expected a model" in pretrained_frozen("model").message
    assert "does not know where the head" in pretrained_frozen(nn.Linear(2, 2)).message


EVEN_CHECKERS = """
from labkit.quiz.checkers import CheckResult

def check_is_even(value, *, label):
    parity = "even" if value % 2 == 0 else "odd"
    return CheckResult(parity == "even", f"{label}: {value} is {parity}")

CHECKERS = {"test_is_even": check_is_even}
"""


def test_a_code_exercise_in_a_bank_is_graded_through_the_quiz(tmp_path, monkeypatch):
    (tmp_path / "even_checkers.py").write_text(EVEN_CHECKERS, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    bank = parse_bank({"id": "code", "checkers": "even_checkers", "questions": [
        {"id": "even", "type": "code", "prompt": "Make an even number", "checker": "test_is_even",
         "options": {"label": "n"}}]})
    quiz = Quiz(bank, results_path=tmp_path / "r.json")
    quiz.widget
    exercise = view(quiz, "even")
    assert exercise.check.layout.display == "none" and exercise.reveal.layout.display == "none"
    assert 'quiz.answer("even", ' in exercise.input.widget.value
    assert quiz.answer("even", 3).status == "wrong" and "n: 3 is odd" in exercise.feedback.value
    assert quiz.answer("even", 4).status == "correct"
    assert saved(quiz)["questions"]["even"]["attempts"] == 2


# --- flashcards and glossary ---------------------------------------------------------------

REQUIRED_TERMS = ["transfer learning", "pre-trained model", "fine-tuning", "feature extraction",
                  "VGG", "ResNet", "Inception", "BERT", "residual connection",
                  "inception module", "WordPiece", "masked language model"]


def test_the_glossary_covers_the_terms_the_course_needs():
    glossary = Glossary.from_file(GLOSSARY)
    for term in REQUIRED_TERMS:
        assert glossary.lookup(term).definition
    assert glossary.lookup("skip connection").term == "residual connection"


def test_glossary_table_shows_every_term_its_definition_see_also_and_lesson():
    glossary = Glossary.from_file(GLOSSARY)
    assert "lk-glossary" in classes(glossary.widget)
    table = glossary.widget.value
    assert table.count("<tr>") == len(glossary.entries) and "<b>BERT</b>" in table
    residual = glossary.lookup("residual connection")
    row = next(r for r in table.split("<tr>") if "<b>residual connection</b>" in r)
    assert "F(x) + x" in row and residual.lesson == "03_resnet" and "03_resnet" in row
    assert html.escape(", ".join(residual.see_also)) in row and residual.see_also


def test_flashcards_flip_next_previous_shuffle():
    cards = Flashcards([Card(e.term, e.definition) for e in load_glossary(GLOSSARY)
                        if e.term in ("BERT", "VGG", "ResNet")])
    cards.widget
    card, buttons = cards._card, cards.widget.children[2].children
    flip, previous, next_, shuffle = buttons[:4]
    first = cards.card
    assert first.front in card.value and "lk-card-front" in card.value
    flip.click()
    assert first.back[:30] in card.value and "lk-card-back" in card.value
    next_.click()
    assert cards.card != first and "lk-card-front" in card.value
    assert cards._position.value.startswith("card 2 of 3")
    previous.click()
    assert cards.card == first
    shuffle.click()
    assert sorted(cards.order) == [0, 1, 2] and cards.position == 0
    assert {"lk-flip", "lk-next", "lk-shuffle"} <= set().union(*(classes(b) for b in buttons))
    assert "BERT:" in cards._repr_mimebundle_()["text/plain"]


def test_glossary_errors_name_file_entry_and_field(tmp_path):
    glossary = tmp_path / "glossary.yaml"
    glossary.write_text("terms:\n  - {term: A, definition: x, see_also: [B]}\n"
                        "  - {term: a, definition: y}\n  - {term: C}\n")
    with pytest.raises(BankError) as caught:
        load_glossary(glossary)
    message = str(caught.value)
    assert "term 'A', field 'see_also'" in message and "'B' is not a term" in message
    assert "term 'a', field 'term': appears more than once" in message
    assert str(glossary) in message and "term 'C', field 'definition'" in message


def test_every_bank_beside_the_notebooks_is_valid():
    banks = [p for p in QUIZZES.glob("*.yaml") if p.name != "glossary.yaml"]
    assert banks
    for path in banks:
        assert load_bank(path).questions
