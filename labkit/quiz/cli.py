"""``python -m labkit quiz ...``: export a learner's results, merge a class's into a gradebook,
check quiz banks.

    python -m labkit quiz export [--to DIR_OR_FILE] [--learner NAME] [--results FILE]
    python -m labkit quiz gradebook FILE_OR_FOLDER... [-o gradebook.csv]
    python -m labkit quiz validate BANK...

Exit status: 0 when everything worked; 1 when something could not be read (the gradebook is
still written for the files that could, and every unreadable file is named on stderr).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_quiz_parser", "run_quiz_command"]


def add_quiz_parser(commands: argparse._SubParsersAction) -> None:
    quiz = commands.add_parser("quiz", help="export quiz results, build a gradebook, check banks")
    actions = quiz.add_subparsers(dest="quiz_command", required=True)
    export = actions.add_parser("export", help="copy your quiz results to a file to hand in")
    export.add_argument("--to", type=Path, default=None,
                        help="file or folder to write (default: ./quiz-results-<learner>.json)")
    export.add_argument("--learner", default=None, help="name to record (default: your login)")
    export.add_argument("--results", type=Path, default=None,
                        help="results file to export (default: $LABKIT_QUIZ_RESULTS or the "
                             "user data folder)")
    book = actions.add_parser("gradebook", help="merge learners' results files into one CSV")
    book.add_argument("sources", nargs="+", type=Path,
                      help="results files, or folders searched for *.json")
    book.add_argument("-o", "--output", type=Path, default=None,
                      help="CSV file to write (default: print to stdout)")
    check = actions.add_parser("validate", help="check quiz bank files and report every problem")
    check.add_argument("banks", nargs="+", type=Path)


def _export(args: argparse.Namespace) -> int:
    from labkit.quiz.store import ResultsFileError, export_results

    try:
        target = export_results(destination=args.to, source=args.results, learner=args.learner)
    except (FileNotFoundError, ResultsFileError, OSError) as error:
        print(f"quiz export: {error}", file=sys.stderr)
        return 1
    print(f"Wrote {target}: hand this file in.")
    return 0


def _gradebook(args: argparse.Namespace) -> int:
    from labkit.instructor.gradebook import build_gradebook

    book = build_gradebook(args.sources)
    text = book.csv_text()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
    print(book.summary() + (f"\nwrote {args.output}" if args.output else ""), file=sys.stderr)
    return 1 if book.unreadable or not book.rows else 0


def _validate(args: argparse.Namespace) -> int:
    from labkit.quiz.bank import BankError, load_bank, read_data_file
    from labkit.quiz.cards import load_glossary

    failed = 0
    for path in args.banks:
        try:
            data = read_data_file(Path(path), "quiz bank")
            if isinstance(data, dict) and "terms" in data and "questions" not in data:
                print(f"{path}: OK, glossary with {len(load_glossary(path))} terms")
                continue
            bank = load_bank(path)
        except (BankError, FileNotFoundError) as error:
            print(error, file=sys.stderr)
            failed += 1
            continue
        except OSError as error:  # a folder on Windows, no permission
            print(f"{path}: could not be read: {error}. Fix: name a quiz bank file you can "
                  f"read.", file=sys.stderr)
            failed += 1
            continue
        print(f"{path}: OK, quiz {bank.id!r} with {len(bank.questions)} questions")
    return 1 if failed else 0


def run_quiz_command(args: argparse.Namespace) -> int:
    handlers = {"export": _export, "gradebook": _gradebook, "validate": _validate}
    return handlers[args.quiz_command](args)
