"""Command line: ``python -m labkit doctor | assets | quiz | course ...``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_course_parser(commands) -> None:
    course = commands.add_parser(
        "course", help="for instructors: make student versions, check-run every notebook")
    actions = course.add_subparsers(dest="course_command", required=True)
    student = actions.add_parser(
        "student", help="write student versions: solutions replaced by 'your code here'")
    student.add_argument("sources", nargs="*", type=Path,
                         help="notebooks or folders (default: the course's notebooks/)")
    student.add_argument("-o", "--output", type=Path, default=Path("student-notebooks"),
                         help="folder to write them to (default: ./student-notebooks)")
    run = actions.add_parser(
        "run", help="execute every notebook with papermill and report status, time and memory")
    run.add_argument("sources", nargs="*", type=Path,
                     help="notebooks or folders (default: the course's notebooks/)")
    run.add_argument("--full", action="store_true",
                     help="full size, as a learner runs it (default: smoke size, seconds each)")
    run.add_argument("--standin", action="store_true",
                     help="random weights and generated data instead of the prefetched assets")
    run.add_argument("--offline", action="store_true",
                     help="never download (what a room without network sees)")
    run.add_argument("--installed", action="store_true",
                     help="run lessons 05, 06, 07, 10 and 11 on the real model and photos "
                          "installed with the course (EfficientNet-Lite0, faces) instead of "
                          "downloads")
    run.add_argument("-o", "--output", type=Path, default=Path("course-run"),
                     help="folder for the executed copies (default: ./course-run)")
    run.add_argument("--report", type=Path, default=None,
                     help="report file, .md or .html (default: OUTPUT/report.md)")
    run.add_argument("--timeout", type=float, default=600,
                     help="seconds any one cell may take (default: 600)")


def run_course_command(args) -> int:
    from labkit.instructor import course

    try:
        if args.course_command == "student":
            written = course.write_student_versions(args.sources or None, args.output)
            print(f"Wrote {len(written)} student notebooks and their quizzes to {args.output}")
            return 0
        report = course.check_report_path(args.report or args.output / "report.md")  # before running
        result = course.run_course(args.sources or None, output=args.output, smoke=not args.full,
                                   standin=args.standin, offline=args.offline,
                                   installed=args.installed, timeout=args.timeout)
    except (course.StudentVersionError, FileNotFoundError, ValueError) as error:
        print(f"course {args.course_command}: {error}", file=sys.stderr)
        return 1
    print(f"{result.summary()}. Report: {result.write_report(report)}")
    return 0 if result.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("doctor", help="check that this machine is ready for the course")
    check.add_argument("--timeout", type=float, default=3.0,
                       help="seconds to wait for each model hub (default: 3)")
    from labkit.assets import cli as assets_cli

    assets_cli.add_arguments(commands.add_parser(
        "assets", help="list, fetch, verify, pack and unpack pre-trained weights and datasets"))
    from labkit.quiz.cli import add_quiz_parser, run_quiz_command

    add_quiz_parser(commands)
    add_course_parser(commands)
    args = parser.parse_args(argv)

    if args.command == "doctor":
        from labkit.instructor.doctor import doctor

        report = doctor(timeout=args.timeout)
        print(report)
        return 0 if report.ok else 1
    if args.command == "assets":
        return assets_cli.run(args)
    if args.command == "quiz":
        return run_quiz_command(args)
    if args.command == "course":
        return run_course_command(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
