"""Attempts, scores and the results file: sessions, persistence, export and the gradebook.

Every results file here lives in tmp_path; nothing touches the learner's own file.
"""

import csv
import io
import json
import os

import pytest

from labkit.__main__ import main
from labkit.quiz.bank import parse_bank
from labkit.instructor.gradebook import build_gradebook
from labkit.quiz.store import (FORMAT, RESULTS_ENV, QuizSession, ResultsStore,
                               default_results_path, export_results, read_results)

BANK = {
    "id": "demo", "title": "Demo", "max_attempts": 2,
    "questions": [
        {"id": "pick", "type": "single", "prompt": "Pick", "hints": ["It is b.", "Really b."],
         "explanation": "b is right.",
         "choices": [{"id": "a", "text": "A"}, {"id": "b", "text": "B", "correct": True}]},
        {"id": "count", "type": "numeric", "prompt": "How many?", "answer": 3, "points": 2},
        {"id": "name", "type": "text", "prompt": "Name", "answer": "ResNet", "max_attempts": None},
    ],
}


def make_session(path, bank=BANK):
    return QuizSession(parse_bank(bank), ResultsStore(path))


def saved(path):
    return json.loads(path.read_text(encoding="utf-8"))


# --- attempts, hints, reveal, score --------------------------------------------------------

def test_wrong_then_right_is_saved_with_attempts_answer_and_score(tmp_path):
    path = tmp_path / "results.json"
    session = make_session(path)
    assert session.submit("pick", "a").status == "wrong"
    right = session.submit("pick", "b")
    assert right.status == "correct" and right.attempts == 2
    assert "b is right." in right.details
    record = saved(path)["quizzes"]["demo"]
    pick = record["questions"]["pick"]
    assert (pick["answer"], pick["correct"], pick["attempts"]) == ("b", True, 2)
    assert pick["timestamp"]
    assert (record["score"], record["max_score"], record["answered"]) == (1, 4, 1)
    assert saved(path)["format"] == FORMAT


def test_invalid_answers_cost_no_attempt(tmp_path):
    session = make_session(tmp_path / "r.json")
    assert session.submit("count", "three").status == "invalid"
    assert session.progress["count"].attempts == 0
    assert not (tmp_path / "r.json").exists()  # nothing graded, nothing written


def test_attempts_run_out_then_the_answer_can_be_revealed_and_scores_nothing(tmp_path):
    session = make_session(tmp_path / "r.json")
    assert session.reveal("count").status == "invalid"  # not before trying
    first = session.submit("count", 1)
    assert "1 attempt left" in first.message
    last = session.submit("count", 2)
    assert "No attempts left" in last.message
    assert session.submit("count", 3).status == "closed"  # too late, even if right
    shown = session.reveal("count")
    assert shown.status == "revealed" and "3" in shown.message
    assert session.score().points == 0
    assert saved(tmp_path / "r.json")["quizzes"]["demo"]["questions"]["count"]["revealed"]


def test_a_correct_question_is_closed(tmp_path):
    session = make_session(tmp_path / "r.json")
    session.submit("pick", "b")
    again = session.submit("pick", "a")
    assert again.status == "closed" and session.progress["pick"].correct
    assert session.reveal("pick").status == "closed"  # nothing to reveal: it was answered
    assert not session.progress["pick"].revealed


def test_unlimited_attempts_are_never_revealed(tmp_path):
    session = make_session(tmp_path / "r.json")
    for _ in range(5):
        assert session.submit("name", "VGG").status == "wrong"
    assert session.reveal("name").status == "closed"
    assert session.submit("name", "resnet").status == "correct"


def test_hints_come_one_at_a_time_and_are_counted(tmp_path):
    session = make_session(tmp_path / "r.json")
    assert session.next_hint("pick") == "It is b."
    assert session.next_hint("pick") == "Really b."
    assert session.next_hint("pick") is None
    assert saved(tmp_path / "r.json")["quizzes"]["demo"]["questions"]["pick"]["hints"] == 2


def test_unknown_question_ids_name_the_known_ones(tmp_path):
    with pytest.raises(KeyError, match="pick, count, name"):
        make_session(tmp_path / "r.json").submit("nope", "a")


# --- persistence ---------------------------------------------------------------------------

def test_a_kernel_restart_loses_nothing(tmp_path):
    path = tmp_path / "r.json"
    first = make_session(path)
    first.submit("pick", "a")
    first.submit("count", 3)
    restarted = make_session(path)  # a new kernel reads the same file
    assert restarted.progress["pick"].attempts == 1
    assert restarted.progress["count"].correct
    assert restarted.score() == first.score()
    assert restarted.submit("pick", "b").attempts == 2


def test_a_changed_answer_key_starts_that_question_afresh(tmp_path):
    path = tmp_path / "r.json"
    make_session(path).submit("count", 3)
    changed = json.loads(json.dumps(BANK))
    changed["questions"][1]["answer"] = 4
    assert make_session(path, changed).progress["count"].attempts == 0


def test_two_quizzes_share_one_file_without_overwriting_each_other(tmp_path):
    path = tmp_path / "r.json"
    other = {**BANK, "id": "other"}
    one, two = make_session(path), make_session(path, other)
    one.submit("pick", "b")
    two.submit("pick", "a")
    assert set(saved(path)["quizzes"]) == {"demo", "other"}


def test_a_corrupt_results_file_is_kept_aside_reported_and_new_answers_saved(tmp_path):
    path = tmp_path / "r.json"
    path.write_text('{"format": "labkit-quiz-results", "quizz', encoding="utf-8")
    with pytest.warns(UserWarning, match="could not be read"):
        session = make_session(path)
    kept = list(tmp_path.glob("r.corrupt-*.json"))
    assert len(kept) == 1 and kept[0].read_text().endswith('"quizz')
    assert any(kept[0].name in note for note in session.store.notes)
    session.submit("pick", "b")
    assert saved(path)["quizzes"]["demo"]["questions"]["pick"]["correct"]


@pytest.mark.parametrize("content", ["[]", '{"format": "other"}', "\xff\xfe",
                                     '{"format": "labkit-quiz-results", "version": 1, '
                                     '"quizzes": {"q": {"questions": []}}}',
                                     '{"format": "labkit-quiz-results", "version": 1, '
                                     '"quizzes": {"q": {"questions": {"a": {"attempts": "x"}}}}}'])
def test_every_kind_of_unreadable_file_is_kept_aside(tmp_path, content):
    path = tmp_path / "r.json"
    path.write_bytes(content.encode("latin-1"))
    with pytest.warns(UserWarning):
        ResultsStore(path).read()
    assert not path.exists() and len(list(tmp_path.glob("r.corrupt-*.json"))) == 1


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    session = make_session(path)
    session.submit("pick", "b")
    before = path.read_bytes()

    def fail(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", fail)
    assert session.submit("count", 3).status == "correct"  # graded even though saving failed
    assert path.read_bytes() == before  # the old file is whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "r.json.lock"]  # the lock stays
    assert any("disk full" in note and RESULTS_ENV in note for note in session.store.notes)


def test_default_path_and_environment_override(tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV, str(tmp_path / "mine.json"))
    assert default_results_path() == tmp_path / "mine.json"
    monkeypatch.delenv(RESULTS_ENV)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_results_path() == tmp_path / "data" / "labkit" / "quiz-results.json"


# --- export and gradebook ------------------------------------------------------------------

def learner_file(tmp_path, name, answers):
    path = tmp_path / f"{name}-raw.json"
    session = make_session(path)
    for question_id, value in answers:
        session.submit(question_id, value)
    return export_results(source=path, destination=tmp_path / "class", learner=name)


def test_export_names_the_file_after_the_learner(tmp_path):
    target = learner_file(tmp_path, "ada", [("pick", "b")])
    assert target == tmp_path / "class" / "quiz-results-ada.json"
    assert read_results(target)["learner"] == "ada"
    with pytest.raises(FileNotFoundError):
        export_results(source=tmp_path / "none.json", destination=tmp_path)


def test_gradebook_merges_learners_and_reports_unreadable_files(tmp_path):
    (tmp_path / "class").mkdir()
    learner_file(tmp_path, "ada", [("pick", "a"), ("pick", "b"), ("count", 3)])
    learner_file(tmp_path, "bob", [("count", 1)])
    (tmp_path / "class" / "broken.json").write_text("{not json", encoding="utf-8")
    book = build_gradebook([tmp_path / "class", tmp_path / "missing.json"])
    rows = {row["learner"]: row for row in book.rows}
    assert rows["ada"]["demo/pick"] == 1 and rows["ada"]["demo/count"] == 1
    assert rows["ada"]["demo/name"] == "" and rows["ada"]["total"] == "3"
    assert rows["bob"]["demo/count"] == 0 and rows["bob"]["demo:score"] == "0"
    assert book.columns[:4] == ["learner", "file", "total", "max_total"]
    assert {p.name for p, _ in book.unreadable} == {"broken.json", "missing.json"}
    assert "UNREADABLE" in book.summary() and "not valid JSON" in book.summary()


def test_quiz_cli_gradebook_writes_csv_and_fails_loudly_on_unreadable_files(tmp_path, capsys):
    (tmp_path / "class").mkdir()
    learner_file(tmp_path, "ada", [("pick", "b")])
    out = tmp_path / "book.csv"
    assert main(["quiz", "gradebook", str(tmp_path / "class"), "-o", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert rows[0]["learner"] == "ada" and rows[0]["demo/pick"] == "1"
    (tmp_path / "class" / "bad.json").write_text("[]")
    assert main(["quiz", "gradebook", str(tmp_path / "class"), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "bad.json" in err and "not a labkit quiz results file" in err
    assert len(list(csv.DictReader(io.StringIO(out.read_text())))) == 1  # still written


def test_quiz_cli_export_and_validate(tmp_path, capsys, monkeypatch):
    raw = tmp_path / "raw.json"
    make_session(raw).submit("pick", "b")
    monkeypatch.setenv(RESULTS_ENV, str(raw))
    assert main(["quiz", "export", "--to", str(tmp_path), "--learner", "cy"]) == 0
    assert (tmp_path / "quiz-results-cy.json").exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("id: x\nquestions: [{id: a, type: text, prompt: p}]\n")
    assert main(["quiz", "validate", str(bad)]) == 1
    assert "question 'a', field 'answer'" in capsys.readouterr().err
    raw.write_text("garbage")
    assert main(["quiz", "export", "--to", str(tmp_path)]) == 1


# --- a renumbered or split lesson keeps what was answered ---------------------------------

def test_answers_saved_under_a_previous_bank_id_are_restored_and_saved_under_the_new_one(
        tmp_path):
    path = tmp_path / "results.json"
    old = make_session(path, {**BANK, "id": "07_demo"})
    assert old.submit("pick", "b").status == "correct"
    # The lesson became 08 and its bank says so; one question also moved in from another bank.
    other = make_session(path, {**BANK, "id": "05_other"})
    assert other.submit("count", 3).status == "correct"
    renamed = make_session(path, {**BANK, "id": "08_demo",
                                  "previous_ids": ["05_other", "07_demo"]})
    assert renamed.progress["pick"].correct and renamed.progress["pick"].attempts == 1
    assert renamed.progress["count"].correct
    assert renamed.submit("name", "ResNet").status == "correct"
    stored = saved(path)["quizzes"]["08_demo"]["questions"]
    assert stored["pick"]["correct"] and stored["count"]["correct"] and stored["name"]["correct"]
    # Without previous_ids the same bank starts afresh: the lookup is what restores them.
    assert not make_session(tmp_path / "fresh.json", {**BANK, "id": "08_demo"}).progress[
        "pick"].correct
    assert not make_session(path, {**BANK, "id": "09_demo"}).progress["pick"].correct


def test_previous_ids_must_be_a_list_of_bank_ids():
    from labkit.quiz.bank import BankError
    with pytest.raises(BankError, match="previous_ids.*must be a list of earlier bank ids"):
        parse_bank({**BANK, "previous_ids": "07_demo"})
