"""Quiz banks that would hang the checker, or that no learner could ever answer right (or that
accept anything), are refused by ``python -m labkit quiz validate`` with the file, question,
field and fix named."""

import subprocess
import sys
import textwrap
import time

import pytest

from labkit.__main__ import main
from labkit.quiz.bank import BankError, load_bank

from conftest import ROOT

# Ten values, ten times ten, ... : 10**9 strings from a file of a few hundred bytes.
LEVELS = "abcdefghi"
BOMB = "id: bomb\ndescription:\n" + "".join(
    f"  - &{name} [{', '.join(['lol'] * 10 if i == 0 else [f'*{LEVELS[i - 1]}'] * 10)}]\n"
    for i, name in enumerate(LEVELS)) + (
    "questions:\n  - {id: q, type: text, prompt: *i, answer: x}\n")


def run_limited(args, timeout=60):
    """Run a Python command with 1 GiB of address space (where the OS can limit it): a bank
    that expands without bound then fails fast instead of taking the machine's memory."""
    def limit():
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (2 ** 30, 2 ** 30))
    start = time.monotonic()
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT,
                          preexec_fn=limit if sys.platform != "win32" else None)
    return done, time.monotonic() - start


def test_a_yaml_alias_bomb_is_refused_at_once_naming_the_file_and_the_fix(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB, encoding="utf-8")
    done, seconds = run_limited(["-m", "labkit", "quiz", "validate", str(path)])
    assert done.returncode == 1, done.stderr
    assert seconds < 10
    assert "Traceback" not in done.stderr and "MemoryError" not in done.stderr
    assert str(path) in done.stderr and "alias" in done.stderr
    assert "line 4" in done.stderr and "Fix:" in done.stderr
    with pytest.raises(BankError, match="alias"):  # the library says the same
        load_bank(path)


def test_values_in_messages_are_shortened_without_being_expanded_first():
    # Built in Python (parse_bank takes data, not only files): shared lists, 10**9 values.
    code = textwrap.dedent("""
        from labkit.quiz.bank import BankError, parse_bank
        value = ["lol"] * 10
        for _ in range(8):
            value = [value] * 10
        try:
            parse_bank({"id": "b", "title": value, "questions": [
                {"id": "q", "type": "text", "prompt": value, "answer": value}]})
        except BankError as error:
            print(error)
    """)
    done, seconds = run_limited(["-c", code])
    assert done.returncode == 0, done.stderr[-2000:]
    assert seconds < 10
    assert "field 'title': must be text, got list [[[" in done.stdout
    assert max(len(line) for line in done.stdout.splitlines()) < 200


def write(tmp_path, question, name="bank.yaml"):
    path = tmp_path / name
    path.write_text(f"id: demo\nquestions:\n  - {question}\n", encoding="utf-8")
    return path


NUMERIC = "{id: n, type: numeric, prompt: Count, "


@pytest.mark.parametrize("question, field, why", [
    (NUMERIC + "answer: .nan}", "answer", "finite"),
    (NUMERIC + "answer: .inf, tolerance: 1}", "answer", "finite"),
    (NUMERIC + "answer: 1.0e+999}", "answer", "finite"),
    (NUMERIC + "answer: 2, tolerance: .inf}", "tolerance", "finite"),
    (NUMERIC + "answer: 2, tolerance: .nan}", "tolerance", "finite"),
    (NUMERIC + "answer: 2, tolerance: -1}", "tolerance", "at least 0"),
    (NUMERIC + "answer: 2, relative_tolerance: .inf}", "relative_tolerance", "finite"),
    (NUMERIC + "answer: 2, relative_tolerance: 1.5}", "relative_tolerance", "below 1"),
    (NUMERIC + "answer: 2, points: .inf}", "points", "finite"),
    (NUMERIC + "answer: 2, points: .nan}", "points", "finite"),
    (NUMERIC + "answer: 2, unit: s, units: {ms: .nan}}", "units.ms", "positive"),
    (NUMERIC + "answer: 2, unit: s, units: {ks: .inf}}", "units.ks", "finite"),
    (NUMERIC + "answer: 2, unit: s, units: {ks: " + "9" * 400 + "}}", "units.ks", "finite"),
    (NUMERIC + "answer: " + "9" * 400 + "}", "answer", "finite"),
    (NUMERIC + "answer: 2, mistakes: [{answer: .nan, feedback: wrong}]}", "mistakes[0].answer",
     "finite"),
    ("{id: t, type: text, prompt: Name, answer: ''}", "answer", "empty"),
    ("{id: t, type: text, prompt: Name, answer: '   '}", "answer", "empty"),
    ("{id: t, type: text, prompt: Name, answer: '?!'}", "answer", "punctuation"),
    ("{id: t, type: text, prompt: Name, answer: x, accept: ['']}", "accept", "empty"),
    ("{id: t, type: text, prompt: Name, answer: x, mistakes: [{answer: '', feedback: f}]}",
     "mistakes[0].answer", "empty"),
])
def test_banks_that_no_answer_or_every_answer_passes_fail_validation(tmp_path, capsys,
                                                                     question, field, why):
    path = write(tmp_path, question)
    assert main(["quiz", "validate", str(path)]) == 1
    err = capsys.readouterr().err
    question_id = question.split("id: ")[1].split(",")[0]
    assert str(path) in err and f"question '{question_id}', field '{field}'" in err, err
    assert why in err and "Fix:" in err, err


@pytest.mark.parametrize("text, name, why", [
    ("id: demo\npoints: " + "9" * 5000 + "\nquestions: []\n", "big.yaml", "digits"),
    ('{"id": "demo", "points": ' + "9" * 5000 + "}", "big.json", "digits"),
    ("id: demo\nquestions: " + "[" * 5000 + "]" * 5000 + "\n", "deep.yaml", "nested"),
    ('{"id": "demo", "questions": ' + "[" * 100000 + "]" * 100000 + "}", "deep.json",
     "nested"),
])
def test_odd_files_are_reported_not_crashed_on(tmp_path, text, name, why):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(BankError) as caught:
        load_bank(path)
    assert str(path) in str(caught.value) and why in str(caught.value)
    assert "Fix:" in str(caught.value)


def test_the_course_banks_and_glossary_still_validate(capsys):
    files = sorted((ROOT / "notebooks" / "quizzes").glob("*.yaml"))
    assert len(files) >= 13
    assert main(["quiz", "validate", *map(str, files)]) == 0, capsys.readouterr().err
    assert "glossary.yaml: OK, glossary with" in capsys.readouterr().out


def test_validate_reports_a_broken_glossary(tmp_path, capsys):
    path = tmp_path / "glossary.yaml"
    path.write_text("terms:\n  - {term: A, definition: x}\n", encoding="utf-8")
    assert main(["quiz", "validate", str(path)]) == 1
    assert "lesson" in capsys.readouterr().err
