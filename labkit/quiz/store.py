"""The learner's results file: every answer and score, kept across kernel restarts (lesson 00).

One JSON file per learner holds all quizzes: ``{"format": "labkit-quiz-results", "version": 1,
"learner": ..., "quizzes": {quiz id: {"score": ..., "questions": {question id: {...}}}}}``. It
is ``$LABKIT_QUIZ_RESULTS``, else ``quiz-results.json`` in the user's data folder
(``$XDG_DATA_HOME/labkit`` or ``~/.local/share/labkit``; ``%APPDATA%\\labkit`` on Windows).
Writes are atomic and hold a lock on ``<name>.lock``, so kernels saving at once each keep their
answers. A file that cannot be read is renamed to ``<name>.corrupt-<time>.json`` (once, under
the lock), and every kernel that saw it says so.
"""

import getpass
import json
import os
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import filelock

from labkit.files import atomic_write

RESULTS_ENV = "LABKIT_QUIZ_RESULTS"
FORMAT = "labkit-quiz-results"
VERSION = 1
LOCK_TIMEOUT = 20  # seconds; a save holds the lock for milliseconds


class ResultsFileError(ValueError):
    """A results file that is not readable as labkit quiz results."""


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_results_path() -> Path:
    if os.environ.get(RESULTS_ENV):
        return Path(os.environ[RESULTS_ENV]).expanduser()
    if os.name == "nt" and os.environ.get("APPDATA"):
        base = Path(os.environ["APPDATA"])
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "labkit" / "quiz-results.json"


def learner_name() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "learner"


def empty_results() -> dict:
    return {"format": FORMAT, "version": VERSION, "learner": "", "updated": None, "quizzes": {}}


def read_results(path: Path) -> dict:
    """The content of a results file; ResultsFileError (or OSError) saying why it is unusable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ResultsFileError(f"not UTF-8 text ({error.reason})") from None
    except json.JSONDecodeError as error:
        raise ResultsFileError(f"not valid JSON: {error.msg} at line {error.lineno}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ResultsFileError(f"not a labkit quiz results file (no \"format\": \"{FORMAT}\")")
    if not isinstance(data.get("version"), int) or data["version"] > VERSION:
        raise ResultsFileError(f"results format version {data.get('version')!r} is newer than "
                               f"this labkit reads ({VERSION}); update labkit")
    quizzes = data.get("quizzes")
    if not isinstance(quizzes, dict) or not all(
            isinstance(quiz, dict) and isinstance(quiz.get("questions"), dict)
            and all(isinstance(record, dict) for record in quiz["questions"].values())
            for quiz in quizzes.values()):
        raise ResultsFileError("\"quizzes\" is not a mapping of quizzes, each with a mapping "
                               "of \"questions\"")
    return data


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda file: file.write(
        json.dumps(data, indent=1, ensure_ascii=False).encode("utf-8")))


class ResultsStore:
    """Reads and updates one learner's results file. ``notes`` collects what went wrong
    (a file set aside, a failed save) so the quiz can show it rather than lose it."""

    def __init__(self, path: Path | str | None = None):
        self.path = Path(path).expanduser() if path is not None else default_results_path()
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self.notes: list[str] = []

    def tell(self, note: str, *, warn: bool = False) -> None:
        if note not in self.notes:
            self.notes.append(note)
            if warn:
                warnings.warn(note, stacklevel=4)

    def _load(self) -> tuple[dict, str | None]:
        """(content, None), or (empty results, why) when the file is damaged. A missing file
        is empty; one that cannot be opened is reported and left alone."""
        try:
            return read_results(self.path), None
        except FileNotFoundError:
            return empty_results(), None
        except ResultsFileError as error:
            return empty_results(), str(error)
        except OSError as error:  # permissions, a folder: report, touch nothing
            self.tell(f"Could not read your results file {self.path}: {error}. Fix: set "
                      f"{RESULTS_ENV} to a file you can read and write.")
            return empty_results(), None

    def _locked(self, work: Callable[[dict], Any], action: str, seen_damage: str | None = None):
        """``work(content)`` with the lock held, a damaged file set aside first; None if the
        lock or the file failed (the reason is in ``notes``)."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with filelock.FileLock(str(self.lock_path), timeout=LOCK_TIMEOUT):
                data, damage = self._load()
                if damage is not None:
                    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")  # the lock is held
                    kept = self.path.with_name(f"{self.path.stem}.corrupt-{stamp}"
                                               f"{self.path.suffix}")
                    os.replace(self.path, kept)
                    self.tell(f"Your results file {self.path} could not be read ({damage}). "
                              f"It was kept as {kept.name} and a new file was started; earlier "
                              f"answers are in the kept file.", warn=True)
                elif seen_damage is not None:  # another kernel set it aside while we waited
                    self.tell(f"Your results file {self.path} could not be read ({seen_damage})."
                              f" Another open notebook kept it as {self.path.stem}.corrupt-<time>"
                              f"{self.path.suffix} beside it and started a new file; earlier "
                              f"answers are in the kept file.", warn=True)
                return work(data)
        except filelock.Timeout:
            self.tell(f"Could not {action} {self.path}: another process has held its lock "
                      f"{self.lock_path.name} for {LOCK_TIMEOUT} s. Your answers are kept in "
                      f"this kernel. Fix: wait a moment and answer again, or restart a kernel "
                      f"that hangs.")
        except OSError as error:
            self.tell(f"Could not {action} {self.path}: {error}. Fix: set {RESULTS_ENV} to a "
                      f"file in a folder you can write, then run the quiz cell again.")
        return None

    def read(self) -> dict:
        """All results; a missing file is empty, an unreadable one is set aside and reported."""
        data, damage = self._load()  # no lock needed to read: writes replace the file whole
        if damage is None:
            return data
        data = self._locked(lambda data: data, "set aside your damaged results file", damage)
        return data or empty_results()

    def quiz(self, quiz_id: str) -> dict:
        return self.read()["quizzes"].get(quiz_id, {"questions": {}})

    def update_quiz(self, quiz_id: str, change: Callable[[dict | None], dict]) -> bool:
        """Replace one quiz's entry by ``change(the entry in the file, or None)`` under the
        lock, keeping every other quiz. False if it failed (the reason is in ``notes``)."""
        def write(data: dict) -> bool:
            data["quizzes"][quiz_id] = change(data["quizzes"].get(quiz_id))
            data["learner"] = data.get("learner") or learner_name()
            data["updated"] = now()
            write_json(self.path, data)
            return True
        return bool(self._locked(write, "save your answers to"))


def export_results(*, destination: Path | str | None = None, source: Path | str | None = None,
                   learner: str | None = None) -> Path:
    """Copy a learner's checked results to ``quiz-results-<learner>.json``, to hand in."""
    source = Path(source).expanduser() if source is not None else default_results_path()
    if not source.exists():
        raise FileNotFoundError(f"no quiz results at {source} yet: answer a quiz first, or set "
                                f"{RESULTS_ENV} to where your results are.")
    try:
        data = read_results(source)
    except ResultsFileError as error:
        raise ResultsFileError(f"{source}: {error}. Fix: open a quiz notebook once (the file is "
                               f"then set aside and a new one started) and answer again.") from None
    data["learner"] = learner or data.get("learner") or learner_name()
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in data["learner"])
    target = Path(destination) if destination is not None else Path(f"quiz-results-{safe}.json")
    if target.is_dir() or not target.suffix:  # a folder, existing or to be made
        target = target / f"quiz-results-{safe}.json"
    write_json(target, data)
    return target
