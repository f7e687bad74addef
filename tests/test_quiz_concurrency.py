"""Several kernels saving quiz answers into one results file at once: nothing may be lost.

Real processes (the interpreter running the tests), started together behind a file barrier so
their saves overlap; each test repeats its scenario 5 times, each time into a fresh file.
"""

import json
import subprocess
import sys
import textwrap
import time

import filelock

RUNS = 5

WORKER = textwrap.dedent("""
    import json, sys, time, warnings
    from pathlib import Path
    from labkit.quiz.bank import parse_bank
    from labkit.quiz.store import QuizSession, ResultsStore

    folder, me, processes, quizzes, rounds, shared = (
        Path(sys.argv[1]), *map(int, sys.argv[2:6]), sys.argv[6] == "shared")
    first = 0 if shared else me * quizzes  # the same quizzes in every process, or its own

    def bank(number):
        return parse_bank({"id": f"lesson{number}", "max_attempts": None, "questions": [
            {"id": name, "type": "text", "prompt": "?", "answer": "right"}
            for name in ("one", "two")]})

    def barrier(run):  # wait until every process has reached this run
        (run / f"ready-{me}").touch()
        deadline = time.monotonic() + 30
        while len(list(run.glob("ready-*"))) < processes:
            if time.monotonic() > deadline:
                sys.exit(f"another worker never reached {run.name}: it failed")
            time.sleep(0.001)

    made = []  # per run: {quiz: {question: attempts made here}}, notes
    for number in range({runs}):
        run = folder / f"run{number}"
        barrier(run)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sessions = [QuizSession(bank(q), ResultsStore(run / "results.json"))
                        for q in range(first, first + quizzes)]
        counts = {s.bank.id: {"one": 0, "two": 0} for s in sessions}
        for attempt in range(rounds):
            for session in sessions:
                question = ("one", "two")[(attempt + me) % 2]
                feedback = session.submit(question, f"wrong {me} {attempt}")
                assert feedback.status == "wrong", feedback
                counts[session.bank.id][question] += 1
        notes = [n for s in sessions for n in s.store.notes]
        made.append({"counts": counts, "notes": notes})
    print(json.dumps(made))
""")


def run_together(folder, processes, quizzes, rounds, *, shared=True, prepare=None,
                 hold=0.0):
    """Start ``processes`` workers on RUNS fresh results files; their reports, one per process.
    ``shared``: every process answers the same quizzes (one notebook open in several kernels);
    otherwise each answers its own (several notebooks open at once). ``hold``: seconds this
    process keeps each file's lock after every worker has reached it, so all meet it at once."""
    locks = []
    for number in range(RUNS):
        (folder / f"run{number}").mkdir()
        if prepare:
            prepare(folder / f"run{number}" / "results.json")
        if hold:
            locks.append(filelock.FileLock(str(folder / f"run{number}" / "results.json.lock")))
            locks[-1].acquire()
    code = WORKER.replace("{runs}", str(RUNS))
    workers = [subprocess.Popen([sys.executable, "-c", code, str(folder), str(me),
                                 str(processes), str(quizzes), str(rounds),
                                 "shared" if shared else "own"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for me in range(processes)]
    try:
        for number, lock in enumerate(locks):
            deadline = time.monotonic() + 30
            while (len(list((folder / f"run{number}").glob("ready-*"))) < processes
                   and time.monotonic() < deadline):
                time.sleep(0.005)
            time.sleep(hold)
            lock.release()
        results = [worker.communicate(timeout=60) for worker in workers]
    finally:
        for worker in workers:
            worker.kill()
        for lock in locks:
            lock.release()
    for (out, err), worker in zip(results, workers):
        assert worker.returncode == 0 and "Traceback" not in err, err
    return [json.loads(out) for out, err in results]


def stored_attempts(path):
    quizzes = json.loads(path.read_text(encoding="utf-8"))["quizzes"]
    return {quiz: {question: record["attempts"] for question, record in entry["questions"].items()}
            for quiz, entry in quizzes.items()}


def expected_attempts(reports, number):
    total = {}
    for report in reports:
        for quiz, counts in report[number]["counts"].items():
            for question, count in counts.items():
                total.setdefault(quiz, {}).setdefault(question, 0)
                total[quiz][question] += count
    return total


def test_two_kernels_answering_five_quizzes_each_keep_every_attempt(tmp_path):
    reports = run_together(tmp_path, processes=2, quizzes=5, rounds=6, shared=False)
    for number in range(RUNS):
        path = tmp_path / f"run{number}" / "results.json"
        expected = expected_attempts(reports, number)
        assert len(expected) == 10
        assert stored_attempts(path) == expected, f"run {number}"


def test_two_kernels_answering_the_same_five_quizzes_keep_every_attempt(tmp_path):
    reports = run_together(tmp_path, processes=2, quizzes=5, rounds=6)
    for number in range(RUNS):
        path = tmp_path / f"run{number}" / "results.json"
        assert stored_attempts(path) == expected_attempts(reports, number), f"run {number}"


def test_three_kernels_with_many_attempts_on_one_quiz_keep_every_attempt(tmp_path):
    reports = run_together(tmp_path, processes=3, quizzes=1, rounds=20)
    for number in range(RUNS):
        path = tmp_path / f"run{number}" / "results.json"
        expected = expected_attempts(reports, number)
        assert sum(expected["lesson0"].values()) == 60
        assert stored_attempts(path) == expected, f"run {number}"
        saved = json.loads(path.read_text(encoding="utf-8"))["quizzes"]["lesson0"]
        assert saved["answered"] == 2 and saved["score"] == 0


def test_three_kernels_opening_a_damaged_file_at_once_set_it_aside_once_and_lose_nothing(
        tmp_path):
    damaged = '{"format": "labkit-quiz-results", "quizz'

    def prepare(path):
        path.write_text(damaged, encoding="utf-8")

    reports = run_together(tmp_path, processes=3, quizzes=1, rounds=2, prepare=prepare,
                           hold=0.4)
    for number in range(RUNS):
        run = tmp_path / f"run{number}"
        kept = list(run.glob("results.corrupt-*.json"))
        assert len(kept) == 1 and kept[0].read_text(encoding="utf-8") == damaged, number
        assert stored_attempts(run / "results.json") == expected_attempts(reports, number)
        for report in reports:  # every kernel that saw the damage tells its learner
            notes = report[number]["notes"]
            assert any("could not be read" in n and "corrupt" in n for n in notes), notes


# --- the same rules, step by step, with two sessions on one file in this process ----------

BANK = {"id": "demo", "max_attempts": 3, "questions": [
    {"id": "pick", "type": "single", "prompt": "Pick", "hints": ["b", "really b"],
     "choices": [{"id": "a", "text": "A"}, {"id": "b", "text": "B", "correct": True}]},
    {"id": "name", "type": "text", "prompt": "Name", "answer": "ResNet"}]}


def kernel(path):
    from labkit.quiz.bank import parse_bank
    from labkit.quiz.store import QuizSession, ResultsStore
    return QuizSession(parse_bank(BANK), ResultsStore(path))


def test_two_kernels_on_one_quiz_merge_attempts_hints_and_a_correct_answer(tmp_path):
    path = tmp_path / "r.json"
    one, two = kernel(path), kernel(path)
    one.submit("pick", "a")
    two.submit("pick", "a")
    two.submit("pick", "b")  # correct in the second kernel
    assert one.next_hint("pick") == "b"
    one.submit("name", "VGG")  # the first kernel saves again, not knowing of the second
    fresh = kernel(path)
    assert fresh.progress["pick"].attempts == 3 and fresh.progress["pick"].correct
    assert fresh.progress["pick"].answer == "b" and fresh.progress["pick"].hints == 1
    assert fresh.progress["name"].attempts == 1
    assert fresh.score().points == 1
    assert one.progress["pick"].correct  # the first kernel now knows, and closes the question
    assert one.submit("pick", "a").status == "closed"


def test_a_save_blocked_by_a_held_lock_is_reported_and_made_up_for_later(tmp_path, monkeypatch):
    import labkit.quiz.store as store
    monkeypatch.setattr(store, "LOCK_TIMEOUT", 0.2)
    path = tmp_path / "r.json"
    session, other = kernel(path), kernel(path)
    other.submit("name", "VGG")
    with filelock.FileLock(str(path) + ".lock"):  # another process, busy with the file
        assert session.submit("pick", "a").status == "wrong"  # graded all the same
    assert any("r.json.lock" in note and "Fix:" in note for note in session.store.notes)
    session.submit("pick", "a")
    other.submit("name", "AlexNet")
    fresh = kernel(path)
    assert fresh.progress["pick"].attempts == 2 and fresh.progress["name"].attempts == 2
