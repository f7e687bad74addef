"""Command line: ``python -m labkit doctor | assets ...``."""

from __future__ import annotations

import argparse
import sys


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
    args = parser.parse_args(argv)

    if args.command == "doctor":
        from labkit.diagnose import doctor

        report = doctor(timeout=args.timeout)
        print(report)
        return 0 if report.ok else 1
    if args.command == "assets":
        return assets_cli.run(args)
    if args.command == "quiz":
        return run_quiz_command(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
