"""The gradebook and odd handed-in files: one bad file is listed and skipped, never a crash;
every score is checked; no cell becomes a spreadsheet formula; no two columns share a header.

Every results file is real JSON text written into tmp_path, as a learner would hand it in.
"""

import csv
import io
import json

import pytest

from labkit.__main__ import main
from labkit.instructor.gradebook import build_gradebook


def results_text(learner="ada", quiz="demo", questions=("pick",), score="1", max_score="2"):
    """A results file's text, with the scores written as raw JSON (so any number can be)."""
    records = {q: {"correct": True, "attempts": 1, "revealed": False} for q in questions}
    body = json.dumps({"format": "labkit-quiz-results", "version": 1, "learner": learner,
                       "quizzes": {quiz: {"title": "Demo", "score": "@S", "max_score": "@M",
                                          "questions": records}}})
    return body.replace('"@S"', score).replace('"@M"', max_score)


def hand_in(folder, name, text):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    return folder / name


def read_csv(text):
    return list(csv.DictReader(io.StringIO(text)))


@pytest.mark.parametrize("digits", [400, 5000])
def test_a_score_with_hundreds_of_digits_is_listed_and_skipped(tmp_path, digits):
    hand_in(tmp_path, "ada.json", results_text("ada"))
    hand_in(tmp_path, "huge.json", results_text("eve", score="9" * digits, max_score="9" * digits))
    book = build_gradebook([tmp_path])
    assert [row["learner"] for row in book.rows] == ["ada"]
    reasons = {path.name: reason for path, reason in book.unreadable}
    assert list(reasons) == ["huge.json"], reasons
    assert "score" in reasons["huge.json"] or "digits" in reasons["huge.json"]
    assert "set_int_max_str_digits" not in reasons["huge.json"]  # not a fix for an instructor


@pytest.mark.parametrize("score, max_score, problem", [
    ("NaN", "2", "score"), ("Infinity", "Infinity", "score"), ("-1", "2", "score"),
    ("3", "2", "more than"), ("1", "-2", "max_score"), ("1", "NaN", "max_score"),
    ('"1"', "2", "score"), ("true", "2", "score"),
])
def test_scores_that_cannot_be_true_are_listed_and_skipped(tmp_path, score, max_score, problem):
    hand_in(tmp_path, "ada.json", results_text("ada"))
    hand_in(tmp_path, "odd.json", results_text("eve", score=score, max_score=max_score))
    book = build_gradebook([tmp_path])
    assert [row["learner"] for row in book.rows] == ["ada"]
    (path, reason), = book.unreadable
    assert path.name == "odd.json" and problem in reason and "demo" in reason, reason
    assert "nan" not in book.csv_text().lower() and "inf" not in book.csv_text().lower()


def test_scores_that_add_up_past_what_a_number_holds_are_listed_and_skipped(tmp_path):
    text = json.loads(results_text("eve", score="1e308", max_score="1.7e308"))
    text["quizzes"]["other"] = dict(text["quizzes"]["demo"])
    hand_in(tmp_path, "odd.json", json.dumps(text))
    book = build_gradebook([tmp_path])
    assert not book.rows and "add up" in book.unreadable[0][1]


@pytest.mark.parametrize("record", [{"correct": "yes"}, {"attempts": -1}, {"attempts": 1.5},
                                    {"revealed": 1}])
def test_a_question_record_with_odd_values_is_listed_and_skipped(tmp_path, record):
    text = json.loads(results_text("eve"))
    text["quizzes"]["demo"]["questions"]["pick"] = record
    hand_in(tmp_path, "odd.json", json.dumps(text))
    book = build_gradebook([tmp_path])
    assert not book.rows and "pick" in book.unreadable[0][1]


@pytest.mark.parametrize("name", ["=HYPERLINK(\"http://x\",\"ok\")", "+1+2", "-3+4", "@SUM(A1)",
                                  "\t=1", "\r=1", "=cmd|' /C calc'!A0"])
def test_a_name_that_would_start_a_formula_is_escaped(tmp_path, name):
    hand_in(tmp_path, "eve.json", results_text(name))
    book = build_gradebook([tmp_path])
    assert book.rows[0]["learner"] == name  # the data keeps the name as handed in
    (row,) = read_csv(book.csv_text())
    assert row["learner"] == "'" + name
    assert all(not value.startswith(("=", "+", "-", "@", "\t", "\r")) for value in row.values())


def test_a_file_name_that_would_start_a_formula_is_escaped(tmp_path, monkeypatch):
    hand_in(tmp_path, "=1+1.json", results_text("ada"))
    monkeypatch.chdir(tmp_path)
    (row,) = read_csv(build_gradebook(["=1+1.json"]).csv_text())
    assert row["file"] == "'=1+1.json" and row["total"] == "1"  # numbers stay numbers


@pytest.mark.parametrize("first, second", [
    (("a/b", ["c"]), ("a", ["b/c"])),            # both would be "a/b/c"
    (("q/x", ["p"]), ("q", ["x:score"])),        # "q/x:score", the other quiz's score column
    (("q", ["ok"]), ("q:score", ["ok"])),
])
def test_ids_that_would_make_two_columns_share_a_header_are_refused(tmp_path, first, second):
    (quiz_a, questions_a), (quiz_b, questions_b) = first, second
    hand_in(tmp_path, "good.json", results_text("ada", quiz="demo"))
    hand_in(tmp_path, "one.json", results_text("bob", quiz=quiz_a, questions=questions_a))
    hand_in(tmp_path, "two.json", results_text("cy", quiz=quiz_b, questions=questions_b))
    book = build_gradebook([tmp_path])
    assert len(book.columns) == len(set(book.columns))
    refused = {path.name: reason for path, reason in book.unreadable}
    bad = {name for name, (quiz, qs) in (("one.json", first), ("two.json", second))
           if any(c in quiz + "".join(qs) for c in "/:")}
    assert set(refused) == bad and all("letters, digits" in r for r in refused.values()), refused
    assert "ada" in {row["learner"] for row in book.rows}


def test_a_learner_name_that_is_not_text_is_listed_and_skipped(tmp_path):
    hand_in(tmp_path, "odd.json", results_text(learner=["a", "b"]))
    book = build_gradebook([tmp_path])
    assert not book.rows and "learner" in book.unreadable[0][1]


def test_deeply_nested_json_is_listed_not_a_crash(tmp_path):
    hand_in(tmp_path, "deep.json", "[" * 100_000 + "]" * 100_000)
    hand_in(tmp_path, "ada.json", results_text("ada"))
    book = build_gradebook([tmp_path])
    assert [p.name for p, _ in book.unreadable] == ["deep.json"] and len(book.rows) == 1


def test_the_command_lists_the_bad_file_writes_the_rest_and_exits_1(tmp_path, capsys):
    hand_in(tmp_path / "class", "ada.json", results_text("=ada"))
    hand_in(tmp_path / "class", "huge.json", results_text("eve", score="9" * 5000))
    out = tmp_path / "book.csv"
    assert main(["quiz", "gradebook", str(tmp_path / "class"), "-o", str(out)]) == 1
    assert "huge.json" in capsys.readouterr().err
    assert [row["learner"] for row in read_csv(out.read_text(encoding="utf-8"))] == ["'=ada"]
