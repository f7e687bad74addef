"""labkit.quiz grading and quiz banks: pure Python, no widgets, no files written."""

import json
import textwrap
import unicodedata

import pytest
import torch

from labkit.quiz.bank import BankError, load_bank
from labkit.quiz.checkers import CheckResult
from labkit.quiz.grading import (CORRECT, INVALID, WRONG, Choice, CodeExercise, Mistake,
                                 MultipleChoice, Numeric, Ordering, ShortText, SingleChoice,
                                 Target, as_number, normalise_text)

from conftest import ROOT

START_BANK = ROOT / "notebooks" / "quizzes" / "00_start_here.yaml"

CHOICES = (Choice("a", "Feature extraction", True, "Frozen backbone, new head."),
           Choice("b", "Fine-tuning", True, "Keeps training the weights."),
           Choice("c", "Random init", False, "Throws the learned weights away."))


def single():
    return SingleChoice(id="q", prompt="?", choices=(
        Choice("a", "wrong", False, "Not this."), Choice("b", "`right`", True, "This."),
        Choice("c", "Straße", False)))


# --- single choice -------------------------------------------------------------------------

def test_single_choice_right_wrong_and_explanations():
    question = single()
    right, wrong = question.grade("b"), question.grade("a")
    assert right.status == CORRECT and right.record == "b" and right.details == ("This.",)
    assert wrong.status == WRONG and wrong.record == "a" and wrong.details == ("Not this.",)


def test_single_choice_reads_id_in_any_case_and_the_whole_choice_text():
    question = single()
    assert question.grade(" B ").status == CORRECT
    assert question.grade("right").status == CORRECT  # the text, without its backticks
    assert question.grade("STRASSE").record == "c"  # case folding: ß is ss


@pytest.mark.parametrize("answer", ["", "   ", None, 2, ["b"], "z"])
def test_single_choice_unreadable_answers_are_invalid_and_say_what_to_give(answer):
    grade = single().grade(answer)
    assert grade.status == INVALID
    assert "a, b or c" in grade.message


# --- multiple select -----------------------------------------------------------------------

def multiple():
    return MultipleChoice(id="m", prompt="?", choices=CHOICES)


@pytest.mark.parametrize("answer", [["a", "b"], ("b", "a"), {"a", "b"}, "a, b", "b a",
                                    ["a", "b", "a"]])
def test_multiple_select_accepts_lists_sets_and_strings(answer):
    grade = multiple().grade(answer)
    assert grade.status == CORRECT and grade.record == ["a", "b"]


def test_multiple_select_says_how_many_are_wrong_or_missing_without_naming_right_ones():
    grade = multiple().grade(["a", "c"])
    assert grade.status == WRONG
    assert "1 of your choices is not right" in grade.message
    assert "1 right choice is missing" in grade.message
    assert grade.details == ("c) Throws the learned weights away.",)  # only the wrong pick
    assert "missing" in multiple().grade(["a"]).message


@pytest.mark.parametrize("answer", [[], "", None, ["a", 1], ["a", "x"], 7])
def test_multiple_select_invalid_answers(answer):
    assert multiple().grade(answer).status == INVALID


# --- numeric -------------------------------------------------------------------------------

def numeric(**extra):
    # The answer and tolerance are those of the start-here quiz: 2 GFLOP +/- 0.05.
    return Numeric(id="n", prompt="?", targets=(Target(2 - 0.05, 2 + 0.05),), **extra)


@pytest.mark.parametrize("answer, status", [
    (2, CORRECT), (2.05, CORRECT), (1.95, CORRECT),          # bounds are inclusive
    (2.0 + 0.05 + 1e-6, WRONG), (1.95 - 1e-6, WRONG), (0, WRONG),
    ("2.05", CORRECT), (" 2 ", CORRECT), ("\u22122", WRONG),
    ("２", CORRECT),                                          # full-width digit, NFKC
])
def test_numeric_tolerance_bounds_and_spellings(answer, status):
    assert numeric().grade(answer).status == status


def test_numeric_tolerance_edges_survive_floating_point():
    # 0.1 + 0.2 is 0.30000000000000004: still inside [0.3, 0.3].
    question = Numeric(id="x", prompt="?", targets=(Target(0.3, 0.3),))
    assert question.grade(0.1 + 0.2).status == CORRECT


@pytest.mark.parametrize("answer", ["", "  ", "two", True, None, [2], float("nan"),
                                    float("inf"), "1,2,3", "1/0", 10 ** 400, "1e999",
                                    "2,0", "4/2"])  # no decimal commas, no fractions
def test_numeric_unreadable_answers_are_invalid(answer):
    assert numeric().grade(answer).status == INVALID


def test_numeric_units_convert_and_unknown_units_are_invalid():
    question = numeric(unit="GFLOP", units={"MFLOP": 0.001, "FLOP": 1e-9})
    assert question.grade("2 GFLOP").status == CORRECT
    assert question.grade("2000 MFLOP").status == CORRECT
    assert question.grade("2e9 FLOP").status == CORRECT
    assert question.grade("2 gflop").status == CORRECT  # unambiguous case-insensitive match
    invalid = question.grade("2 parsecs")
    assert invalid.status == INVALID and "GFLOP" in invalid.message


def test_numeric_known_mistakes_get_their_feedback():
    question = numeric(mistakes=(Mistake("That is n cubed.", target=Target(1, 1)),))
    assert question.grade(1).details == ("That is n cubed.",)
    assert question.grade(3).details == ()


def test_numeric_accepts_tensor_and_numpy_scalars():
    import numpy as np
    import torch
    assert numeric().grade(np.float32(2.0)).status == CORRECT
    assert numeric().grade(torch.tensor(2.0)).status == CORRECT
    assert numeric().grade(torch.ones(3)).status == INVALID


def test_numbers_in_text_separate_thousands():
    assert as_number("11,176,512") == (11176512.0, "")
    assert as_number("11_176_512 parameters") == (11176512.0, "parameters")
    assert as_number("2.5e9 FLOP") == (2.5e9, "FLOP")
    assert "does not start with a number" in as_number("about 3")


# --- short text ----------------------------------------------------------------------------

def text_question():
    return ShortText(id="t", prompt="?", answers=("fine-tuning", "finetuning"),
                     mistakes=(Mistake("That is the other way.", text="feature extraction"),))


@pytest.mark.parametrize("answer", ["fine-tuning", "Fine Tuning", "  FINE‐TUNING. ",
                                    "finetuning", "\ufb01ne-tuning", "“fine tuning”"])
def test_short_text_is_normalised(answer):  # "\ufb01" is the "fi" ligature
    assert text_question().grade(answer).status == CORRECT


def test_short_text_unicode_forms_compare_equal():
    composed, decomposed = "caf\u00e9", unicodedata.normalize("NFD", "caf\u00e9")
    assert composed != decomposed
    question = ShortText(id="u", prompt="?", answers=(composed,))
    assert question.grade(decomposed).status == CORRECT
    assert question.grade("cafe").status == WRONG  # accents are kept: café is not cafe
    assert normalise_text("Straße") == normalise_text("STRASSE")


def test_short_text_wrong_empty_and_wrong_type():
    question = text_question()
    wrong = question.grade("Feature Extraction")
    assert wrong.status == WRONG and wrong.details == ("That is the other way.",)
    assert question.grade("").status == INVALID
    assert question.grade(" ... ").status == INVALID
    assert question.grade(42).status == INVALID


# --- ordering ------------------------------------------------------------------------------

def ordering():
    items = tuple(Choice(i, i.upper()) for i in ("w", "x", "y", "z"))
    return Ordering(id="o", prompt="?", items=items, display_order=("y", "w", "z", "x"))


def test_ordering_right_and_partly_right():
    assert ordering().grade(["w", "x", "y", "z"]).status == CORRECT
    assert ordering().grade("w x y z").status == CORRECT
    wrong = ordering().grade(["w", "x", "z", "y"])
    assert wrong.status == WRONG and "2 of 4 in the right place" in wrong.message


@pytest.mark.parametrize("answer, why", [
    (["w", "x", "y"], "z missing"), (["w", "w", "y", "z"], "w appears twice"),
    (["w", "x", "y", "q"], "'q'"), ([], "a list"), (None, "a list"), ([1, 2, 3, 4], "a list")])
def test_ordering_needs_a_permutation(answer, why):
    grade = ordering().grade(answer)
    assert grade.status == INVALID and why in grade.message


# --- code exercises ------------------------------------------------------------------------

def code_question(checker):
    return CodeExercise(id="e", prompt="?", checker="test", options={"limit": 3}, check=checker)


def test_code_exercise_passes_options_and_returns_the_checkers_feedback():
    def check(value, *, limit):
        return CheckResult(value <= limit, f"{value} vs {limit}")
    assert code_question(check).grade(2).status == CORRECT
    wrong = code_question(check).grade(5)
    assert wrong.status == WRONG and wrong.message == "5 vs 3" and wrong.record == "5"


def test_grading_a_code_exercise_keeps_the_learners_random_stream():
    def check(value, *, limit):
        torch.manual_seed(99)  # checkers build models and draw inputs
        return CheckResult(torch.rand(1).item() >= 0 and value <= limit, "ok")
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    assert code_question(check).grade(1).status == CORRECT
    assert torch.equal(torch.rand(3), expected)


def test_code_exercise_checker_errors_are_invalid_not_crashes():
    def broken(value, *, limit):
        raise AttributeError("no .parameters")
    def sloppy(value, *, limit):
        return True
    assert "AttributeError: no .parameters" in code_question(broken).grade(1).message
    assert "not a CheckResult" in code_question(sloppy).grade(1).message


# --- banks ---------------------------------------------------------------------------------

def write(tmp_path, text, name="bank.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_the_start_here_bank_loads_and_its_numbers_are_derived():
    bank = load_bank(START_BANK)
    assert bank.id == "00_start_here"
    assert [q.kind for q in bank.questions] == ["single", "multiple", "numeric", "text", "order"]
    gflop = bank.question("gflop")
    n = 1000
    flops = 2 * n ** 3  # the prompt's 2n^3 for n = 1000
    assert gflop.grade(flops / 1e9).status == CORRECT
    assert gflop.grade(f"{flops:.0e} FLOP").status == CORRECT
    assert gflop.grade(flops).status == WRONG  # operations, not GFLOP: a known mistake
    assert gflop.grade(flops).details
    order = bank.question("steps")
    assert list(order.display_order) != [c.id for c in order.items]


def test_a_bank_error_names_file_question_and_field(tmp_path):
    path = write(tmp_path, """
        id: demo
        questions:
          - id: q1
            type: single
            prompt: Which?
            choises: []
          - id: q2
            type: numeric
            prompt: How many?
            answer: "three"
          - id: q3
            type: single
            prompt: Pick
            choices: [{id: a, text: A}, {id: b, text: B}]
          - id: q4
            type: order
            prompt: Sort
            items: [{id: x, text: X}, {id: x, text: Y}]
          - type: text
            prompt: No id
            answer: yes
          - id: q1
            type: essay
            prompt: dup
    """)
    with pytest.raises(BankError) as caught:
        load_bank(path)
    message = str(caught.value)
    assert str(path) in message
    found = {(p.question, p.field) for p in caught.value.problems}
    assert ("'q1'", "choises") in found and "Did you mean 'choices'?" in message
    assert ("'q1'", "choices") in found  # missing
    assert ("'q2'", "answer") in found and "must be a number" in message
    assert ("'q3'", "choices") in found and "correct: true" in message
    assert ("'q4'", "items[1].id") in found and "appears more than once" in message
    assert ("#5", "id") in found
    assert ("'q1'", "type") in found and ("'q1'", "id") in found  # essay; duplicate id


def test_bank_errors_for_numbers_text_and_checkers(tmp_path):
    path = write(tmp_path, """
        id: demo
        questions:
          - {id: a, type: numeric, prompt: x, answer: 1, tolerance: -1, units: {s: 0}}
          - {id: b, type: text, prompt: x, answer: 3}
          - {id: c, type: code, prompt: x, checker: no_such_checker}
          - {id: d, type: single, prompt: x, max_attempts: 0,
             choices: [{id: a, text: A, correct: yes}, {id: b, text: B, correct: "no"}]}
    """)
    with pytest.raises(BankError) as caught:
        load_bank(path)
    found = {(p.question, p.field) for p in caught.value.problems}
    assert {("'a'", "tolerance"), ("'a'", "units.s"), ("'a'", "units"), ("'b'", "answer"),
            ("'c'", "checker"), ("'d'", "max_attempts"), ("'d'", "choices[1].correct")} <= found


@pytest.mark.parametrize("text, where", [
    ("id: demo\nquestions: [\n", "line"), ("- just\n- a list\n", "(file)"),
    ("id: demo\n", "questions"), ("id: demo\nquestions: []\n", "questions"),
    ("id: 'has space'\nquestions: [{id: a, type: text, prompt: p, answer: x}]\n", "id"),
    ("id: d\nmax_attempts: 0\nquestions: [{id: a, type: text, prompt: p, answer: x}]\n",
     "max_attempts")])
def test_malformed_files_are_reported_not_crashed_on(tmp_path, text, where):
    with pytest.raises(BankError) as caught:
        load_bank(write(tmp_path, text))
    assert where in str(caught.value)


def test_yaml_is_read_safely(tmp_path):
    # A YAML tag that would build a Python object under yaml.load must not run.
    path = write(tmp_path, "id: !!python/object/apply:os.system ['echo unsafe']\nquestions: []\n")
    with pytest.raises(BankError, match="not valid YAML"):
        load_bank(path)


def test_json_banks_and_missing_files(tmp_path):
    data = {"id": "j", "questions": [{"id": "a", "type": "text", "prompt": "p", "answer": "x"}]}
    bank = load_bank(write(tmp_path, json.dumps(data), "j.json"))
    assert bank.question("a").grade("X").status == CORRECT
    with pytest.raises(BankError, match="not valid JSON"):
        load_bank(write(tmp_path, "{", "broken.json"))
    with pytest.raises(FileNotFoundError, match="quizzes/nothing.yaml"):
        load_bank(tmp_path / "nothing.yaml")


# --- where code exercises find their checkers ----------------------------------------------

CODE_BANK = """
    id: demo
    checkers: {module}
    questions:
      - {{id: even, type: code, prompt: Give an even number, checker: {name}}}
"""
CHECKERS_MODULE = """
from labkit.quiz.checkers import CheckResult

def check_even(value):
    return CheckResult(value % 2 == 0, f"{value} is {'even' if value % 2 == 0 else 'odd'}")

CHECKERS = {"even": check_even}
"""


def test_a_bank_finds_its_checkers_in_the_module_it_names(tmp_path, monkeypatch):
    (tmp_path / "demo_checkers.py").write_text(CHECKERS_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    bank = load_bank(write(tmp_path, CODE_BANK.format(module="demo_checkers", name="even")))
    assert bank.question("even").grade(4).status == CORRECT
    assert bank.question("even").grade(3).message == "3 is odd"


@pytest.mark.parametrize("module, name, why", [
    ("no_such_checkers", "even", "cannot be found"),
    ("labkit.files", "even", "has no CHECKERS table"),
    ("demo_checkers", "odd", "has no checker 'odd' (it has: even)")])
def test_a_missing_checkers_module_or_name_names_file_question_and_fix(tmp_path, monkeypatch,
                                                                       module, name, why):
    (tmp_path / "demo_checkers.py").write_text(CHECKERS_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write(tmp_path, CODE_BANK.format(module=module, name=name))
    with pytest.raises(BankError) as caught:
        load_bank(path)
    assert [(p.question, p.field) for p in caught.value.problems] == [("'even'", "checker")]
    assert str(path) in str(caught.value) and why in str(caught.value)
    assert "Fix:" in str(caught.value)


def test_a_code_question_in_a_bank_without_checkers_names_the_fix(tmp_path):
    no_module = write(tmp_path, "id: d\nquestions:\n  - {id: e, type: code, prompt: p, "
                                "checker: even}\n", "bare.yaml")
    with pytest.raises(BankError, match=r"question 'e', field 'checker'.*Fix: name the module"):
        load_bank(no_module)
