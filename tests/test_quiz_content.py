"""What the quiz banks and the glossary say, checked across all of them.

- No hint gives the answer away: no count of the right options ("three of the five are true",
  "two are correct"), no hint that holds the answer itself (a correct option's text, a text
  answer, a numeric answer, or a sum such as "100 / 153." that works it out).
- No question id is used by two banks: results files and gradebooks name questions by id.
- Every glossary term names the lesson that teaches it, and that lesson is a notebook; every
  lesson has flashcards of its own terms, and the capstone a review over the whole course.
- The banks of WITH_OPEN_AND_READING each hold a question on an output the lesson printed
  (``read_*``) and an open question (``open_*``) whose explanation is the model answer; a bank
  joins the list once it has them.

Each check is a plain function over the files, and each has a negative control: a planted bad
example in ``tmp_path`` that the check must catch.
"""

import ast
import operator
import re
from collections import defaultdict
from pathlib import Path

import pytest

from labkit.data import HYMENOPTERA_COUNTS
from labkit.quiz import BankError, Flashcards, load_bank
from labkit.quiz.bank import read_data_file
from labkit.quiz.bank import load_glossary
from labkit.quiz.grading import normalise_text

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
QUIZZES = NOTEBOOKS / "quizzes"
GLOSSARY = QUIZZES / "glossary.yaml"
BANKS = sorted(QUIZZES.glob("[0-9][0-9]_*.yaml"))
LESSONS = sorted(path.stem for path in NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
# The banks that already hold a question on a printed output and an open question.
WITH_OPEN_AND_READING = ["01_transfer_learning", "02_vgg", "03_resnet", "04_inception",
                         "05_feature_extraction",
                         "06_fine_tuning", "07_fine_tuning_strategies", "08_bert",
                         "09_fine_tuning_bert", "10_choosing_a_model", "11_capstone"]

# --- the checks --------------------------------------------------------------------------------

_NUMBER = (r"(?:\d+|one|two|three|four|five|six|seven|eight|nine|ten|all|none|both"
           r"|only one|exactly \w+)")
COUNT_PATTERNS = [
    re.compile(rf"\b{_NUMBER}\s+(?:of|out of)\s+(?:the\s+|these\s+|those\s+)?{_NUMBER}\b", re.I),
    re.compile(rf"\b{_NUMBER}\s+(?:\w+\s+){{0,2}}(?:is|are)\s+(?:true|correct|right|false"
               r"|wrong|incorrect)\b", re.I),
]
_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
              ast.Div: operator.truediv}
_SUM = re.compile(r"\d[\d,.]*(?:\s*[-+*/×·−]\s*\d[\d,.]*)+")


def _arithmetic(text: str) -> float | None:
    """The value of a sum of plain numbers such as ``100 / 153`` or ``2 × 1000``; None else."""
    source = text.replace(",", "").replace("×", "*").replace("·", "*").replace("−", "-")
    source = source.rstrip(".")

    def value(node):
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
            return _OPERATORS[type(node.op)](value(node.left), value(node.right))
        raise ValueError(source)

    try:
        return float(value(ast.parse(source, mode="eval").body))
    except (SyntaxError, ValueError, ZeroDivisionError):
        return None


def _numbers_in(text: str) -> list[float]:
    """Every number a hint states, and the value of every sum of numbers it writes out."""
    found = [float(n.replace(",", "")) for n in re.findall(r"(?<![\w.])\d[\d,]*(?:\.\d+)?", text)
             if n.replace(",", "").replace(".", "", 1).isdigit()]
    sums = (_arithmetic(m.group()) for m in _SUM.finditer(text))
    return found + [s for s in sums if s is not None]


def _holds_words(text: str, words: str) -> bool:
    wanted = normalise_text(words)
    return bool(wanted) and re.search(rf"(?<!\w){re.escape(wanted)}(?!\w)",
                                      normalise_text(text)) is not None


def revealing_hints(path: Path) -> list[str]:
    """``"bank:question: why"`` for every hint of a bank that gives its answer away."""
    bank, found = load_bank(path), []
    for question in bank.questions:
        for hint in question.hints:
            why = ""
            if any(pattern.search(hint) for pattern in COUNT_PATTERNS):
                why = "counts the right options"
            elif question.kind in ("single", "multiple"):
                right = [c for c in question.choices if c.correct]
                if any(len(normalise_text(c.text)) >= 8 and _holds_words(hint, c.text)
                       for c in right):
                    why = "quotes a correct option"
            elif question.kind == "text":
                if any(_holds_words(hint, answer) for answer in question.answers):
                    why = "holds the answer"
            elif question.kind == "numeric":
                if any(t.contains(n) for t in question.targets for n in _numbers_in(hint)):
                    why = "states or works out the answer"
            if why:
                found.append(f"{bank.id}:{question.id}: the hint {hint!r} {why}")
    return found


def reused_ids(paths: list[Path]) -> dict[str, list[str]]:
    """{question id: the banks that use it} for every id found in more than one bank."""
    banks = defaultdict(list)
    for path in paths:
        for question in read_data_file(path)["questions"]:
            banks[question["id"]].append(path.stem)
    return {qid: names for qid, names in banks.items() if len(names) > 1}


def terms_without_a_lesson(glossary: Path, notebooks: Path) -> list[str]:
    """Terms whose lesson is missing (the loader refuses them) or names no notebook there."""
    try:
        entries = load_glossary(glossary)
    except BankError as error:
        return [str(p) for p in error.problems if p.field == "lesson"]
    return [f"{e.term!r}: no notebook {e.lesson}.ipynb" for e in entries
            if not (notebooks / f"{e.lesson}.ipynb").is_file()]


def missing_open_or_reading(path: Path) -> list[str]:
    """What a bank lacks: a ``read_*`` question, an ``open_*`` question with a model answer
    (its explanation) that every choice leads to, for no points."""
    bank, problems = load_bank(path), []
    if not any(q.id.startswith("read_") for q in bank.questions):
        problems.append(f"{bank.id}: no read_* question on an output of the lesson")
    opened = [q for q in bank.questions if q.id.startswith("open_")]
    if not opened:
        problems.append(f"{bank.id}: no open_* question")
    for question in opened:
        if len(question.explanation.split()) < 30:
            problems.append(f"{bank.id}:{question.id}: the model answer (explanation) is short")
        if question.kind != "single" or not all(c.correct for c in question.choices):
            problems.append(f"{bank.id}:{question.id}: every choice must show the model answer")
        if question.points != 0:
            problems.append(f"{bank.id}:{question.id}: an open question is not scored (points: 0)")
    return problems


# --- the course's files ------------------------------------------------------------------------


def test_the_banks_are_found():
    assert len(BANKS) >= 10 and {p.stem for p in BANKS} >= set(WITH_OPEN_AND_READING)


@pytest.mark.parametrize("path", BANKS, ids=lambda p: p.stem)
def test_no_hint_gives_the_answer_away(path):
    assert revealing_hints(path) == []


def test_no_question_id_is_used_by_two_banks():
    assert reused_ids(BANKS) == {}


def test_every_glossary_term_names_the_lesson_that_teaches_it():
    assert terms_without_a_lesson(GLOSSARY, NOTEBOOKS) == []
    assert len(load_glossary(GLOSSARY)) >= 40


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_lesson_has_flashcards_of_its_own_terms(lesson):
    cards = Flashcards.for_lesson(GLOSSARY, lesson)
    mine = {e.term for e in load_glossary(GLOSSARY) if e.lesson == lesson}
    assert {card.front for card in cards.cards} == mine and len(mine) >= 2
    assert lesson in cards.title


def test_the_capstone_review_covers_every_lesson():
    entries = load_glossary(GLOSSARY)
    review = Flashcards.review(GLOSSARY)
    assert sorted(c.front for c in review.cards) == sorted(e.term for e in entries)
    lesson_of = {e.term: e.lesson for e in entries}
    assert {lesson_of[c.front] for c in review.cards} == set(LESSONS)
    assert all(lesson_of[c.front] in c.back for c in review.cards)  # where to look it up
    assert Flashcards.review(GLOSSARY, seed=1).cards != review.cards
    assert Flashcards.review(GLOSSARY).cards == review.cards  # the same seed, the same deck


@pytest.mark.parametrize("name", WITH_OPEN_AND_READING)
def test_lesson_banks_hold_a_reading_and_an_open_question(name):
    assert missing_open_or_reading(QUIZZES / f"{name}.yaml") == []


def _text(bank: str, question_id: str) -> str:
    """A question's prompt, choices and explanations as one line of text."""
    question = load_bank(QUIZZES / f"{bank}.yaml").question(question_id)
    parts = [question.prompt, question.explanation]
    parts += [f"{c.text} {c.explanation}" for c in getattr(question, "choices", ())]
    return " ".join(" ".join(parts).split())


def test_the_numbers_of_the_reading_and_open_questions():
    ants, bees = HYMENOPTERA_COUNTS["val"]["ants"], HYMENOPTERA_COUNTS["val"]["bees"]
    confusion = _text("07_fine_tuning_strategies", "read_confusion")  # 8 ants as bees, 5 bees as ants
    assert f"the {ants} ants and {bees} bees" in confusion
    assert f"{(ants - 8 + bees - 5) / (ants + bees):.1%}" in confusion
    assert f"about {100 * 8 / ants:.0f} % of the ants" in confusion
    assert f"about {100 * 5 / bees:.0f} % of the bees" in confusion
    assert f"{bees - 5 + 8} photos bees ({bees - 5} + 8) and {ants - 8 + 5} ants" in confusion
    noise = _text("05_feature_extraction", "read_noise")
    assert f"+{2 * 100 / (ants + bees):.1f} points" in noise and "two photos of 153" in noise
    assert f"one photo is {100 / (ants + bees):.2f} points" in _text("05_feature_extraction",
                                                                      "open_augment")
    kernels = _text("02_vgg", "open_small_kernels")  # two 3x3 against one 5x5
    assert f"from {2 * 3 * 3}·C² to {5 * 5}·C²" in kernels
    assert f"about {100 * (25 / 18 - 1):.0f} % more" in kernels
    head = load_bank(QUIZZES / "01_transfer_learning.yaml").question("frozen_trainable")
    assert head.targets[0].contains(128 * 3 + 3)  # the lesson's test checks the answer itself
    assert f"head's {128 * 3 + 3} numbers" in _text("01_transfer_learning", "open_why_frozen")


# --- negative controls: each check catches a planted bad example --------------------------------

BANK_HEAD = "id: {id}\nquestions:\n"
CHOICES = ("    choices:\n      - {id: a, text: It halves the height and width, correct: true}\n"
           "      - {id: b, text: It adds weights}\n")


def plant(tmp_path, name, body):
    path = tmp_path / f"{name}.yaml"
    path.write_text(BANK_HEAD.format(id=name) + body, encoding="utf-8")
    return path


@pytest.mark.parametrize("hint, why", [
    ("Three of the five are true.", "counts"),
    ("Two are correct; pooling has no weights.", "counts"),
    ("only one of these is right", "counts"),
    ("Think: it halves the height and width.", "quotes a correct option"),
])
def test_a_revealing_hint_on_a_choice_question_is_caught(tmp_path, hint, why):
    path = plant(tmp_path, "demo", f"  - id: q\n    type: multiple\n    prompt: p\n{CHOICES}"
                                   f"    hints: [{hint!r}]\n")
    assert len(found := revealing_hints(path)) == 1 and why in found[0] and "demo:q" in found[0]


@pytest.mark.parametrize("body", [
    "    type: numeric\n    answer: 0.65\n    tolerance: 0.01\n    hints: ['100 / 153.']\n",
    "    type: numeric\n    answer: 73856\n    hints: ['It is 73,856, weights and biases.']\n",
    "    type: text\n    answer: parameters\n    hints: ['The tag is called parameters.']\n",
])
def test_a_hint_that_states_or_computes_the_answer_is_caught(tmp_path, body):
    path = plant(tmp_path, "demo", f"  - id: q\n    prompt: p\n{body}")
    assert len(revealing_hints(path)) == 1


def test_fair_hints_pass(tmp_path):
    path = plant(tmp_path, "demo",
                 f"  - id: m\n    type: multiple\n    prompt: p\n{CHOICES}"
                 "    hints: [Follow one map through a pool.]\n"
                 "  - id: n\n    type: numeric\n    prompt: p\n    answer: 0.65\n"
                 "    tolerance: 0.01\n"
                 "    hints: ['Accuracy is the share of photos right, in percent.', '3 x 3']\n"
                 "  - id: t\n    type: text\n    prompt: p\n    answer: parameters\n"
                 "    hints: [Look at the cell's tags.]\n")
    assert revealing_hints(path) == []


def test_an_id_used_by_two_banks_is_caught(tmp_path):
    question = "  - {id: %s, type: text, prompt: p, answer: x}\n"
    first = plant(tmp_path, "01_a", question % "steps" + question % "own")
    second = plant(tmp_path, "02_b", question % "steps")
    assert reused_ids([first, second]) == {"steps": ["01_a", "02_b"]}
    assert reused_ids([first]) == {}


def test_a_term_without_a_lesson_or_with_an_unknown_lesson_is_caught(tmp_path):
    (tmp_path / "01_intro.ipynb").write_text("{}")
    glossary = tmp_path / "glossary.yaml"
    glossary.write_text("terms:\n  - {term: A, definition: x, lesson: 01_intro}\n"
                        "  - {term: B, definition: y}\n")
    missing = terms_without_a_lesson(glossary, tmp_path)
    assert len(missing) == 1 and missing[0].startswith("term 'B', field 'lesson': missing.")
    assert "e.g. lesson: 05_feature_extraction" in missing[0]
    glossary.write_text("terms:\n  - {term: A, definition: x, lesson: 01_intro}\n"
                        "  - {term: B, definition: y, lesson: 07_gone}\n")
    assert terms_without_a_lesson(glossary, tmp_path) == ["'B': no notebook 07_gone.ipynb"]


def test_a_bank_without_a_reading_or_a_proper_open_question_is_caught(tmp_path):
    path = plant(tmp_path, "demo", "  - id: open_why\n    type: single\n    prompt: p\n"
                                   f"{CHOICES}    explanation: too short\n")
    problems = missing_open_or_reading(path)
    assert any("no read_*" in p for p in problems)
    assert any("short" in p for p in problems) and any("every choice" in p for p in problems)
    assert any("points: 0" in p for p in problems)
