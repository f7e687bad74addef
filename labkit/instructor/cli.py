"""``python -m labkit doctor | assets ... | quiz ... | course ...``: the course's command line.
Exit status: 0 when everything worked, 1 when something failed (named on stderr), 2 for a usage
error or an unknown asset. A command imports its tools when it runs: ``quiz`` never loads torch."""

import argparse
import sys
from pathlib import Path


def _doctor(args) -> int:
    from labkit.instructor.doctor import doctor

    report = doctor()
    print(report)
    return 0 if report.ok else 1


def _assets(args) -> int:
    from labkit.assets import REGISTRY, DownloadError, get_asset, store
    from labkit.assets.registry import describe_size
    from labkit.instructor.packs import PackError, pack, unpack

    try:
        named = [get_asset(name) for name in getattr(args, "names", [])]
        if args.action == "list":
            width = max(len(name) for name in REGISTRY)
            print(f"{'name':{width}}  {'kind':18}  {'size':>7}  {'status':7}  source")
            for a in REGISTRY.values():
                print(f"{a.name:{width}}  {a.kind:18}  {describe_size(a.size):>7}  "
                      f"{store.status(a):7}  {a.source}")
            return 0
        if args.action == "pack":
            packed = pack(args.file, args.names)
            print(f"Packed {len(packed)} asset(s) into {args.file}: {' '.join(packed)}")
            return 0
        if args.action == "unpack":
            results = unpack(args.file)
        elif args.action == "verify":
            results = {a.name: store.verify(a) for a in named or [
                a for a in REGISTRY.values() if store.status(a) == "present"]}
        else:
            results = {}
            for a in named or REGISTRY.values():
                try:
                    results[a.name] = (True, str(store.fetch(a, timeout=args.timeout)))
                except DownloadError as error:
                    results[a.name] = (False, str(error))
    except (KeyError, PackError, OSError) as error:
        print(f"error: {error.args[0] if isinstance(error, KeyError) else error}", file=sys.stderr)
        return 2
    # A failed download goes to stderr, a file that fails its checksum is a line of the report.
    bad, out = ("FAILED", sys.stderr) if args.action == "fetch" else ("BAD", sys.stdout)
    for name, (ok, detail) in results.items():
        print(f"{'ok' if ok else bad:8} {name}: {detail}", file=sys.stdout if ok else out)
    failed = [name for name, (ok, _) in results.items() if not ok]
    if failed:
        fix = ("check the network and run the same command again"
               if args.action == "fetch" else "delete them (`list` shows where) and fetch again")
        print(f"\n{len(failed)} asset(s) failed: {' '.join(failed)}. Fix: {fix}.", file=sys.stderr)
    elif not results and args.action == "verify":
        print("Nothing to verify: no asset is fetched yet.")
    return 1 if failed else 0


def _quiz(args) -> int:
    if args.action == "export":
        from labkit.quiz import export_results

        try:
            written = export_results(destination=args.to, learner=args.learner)
        except (ValueError, OSError) as error:  # a missing or damaged results file
            print(f"quiz export: {error}", file=sys.stderr)
            return 1
        print(f"Wrote {written}: hand this file in.")
        return 0
    if args.action == "gradebook":
        from labkit.instructor.gradebook import build_gradebook

        book = build_gradebook(args.sources)
        if args.output is None:
            sys.stdout.write(book.csv_text())
        else:
            args.output.parent.mkdir(parents=True, exist_ok=True)
            args.output.write_text(book.csv_text(), encoding="utf-8")
        print(book.summary() + (f"\nwrote {args.output}" if args.output else ""), file=sys.stderr)
        return 1 if book.unreadable or not book.rows else 0
    from labkit.quiz import BankError, Glossary, load_bank
    from labkit.quiz.bank import read_data_file

    failed = 0
    for path in args.banks:
        try:
            data = read_data_file(path)
            if isinstance(data, dict) and "terms" in data and "questions" not in data:
                print(f"{path}: OK, glossary with {len(Glossary.from_file(path).entries)} terms")
            else:
                bank = load_bank(path)
                print(f"{path}: OK, quiz {bank.id!r} with {len(bank.questions)} questions")
        except (BankError, OSError) as error:  # OSError: a missing file, no permission
            print(error, file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def _course(args) -> int:
    from labkit.instructor import course

    try:
        if args.action == "student":
            written = course.write_student_versions(args.sources, args.output)
            print(f"Wrote {len(written)} student notebooks and their quizzes to {args.output}")
            return 0
        result = course.run_course(args.sources, output=args.output, smoke=not args.full,
                                   standin=args.standin, offline=args.offline,
                                   installed=args.installed, timeout=args.timeout)
    except (ValueError, FileNotFoundError) as error:  # StudentVersionError is a ValueError
        print(f"course {args.action}: {error}", file=sys.stderr)
        return 1
    print(f"{result.summary()}. Report: {result.write_report(args.output / 'report.md')}")
    return 1 if any(run.error for run in result.runs) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("doctor", help="check that this machine is ready for the course")

    assets = commands.add_parser("assets", help="list, fetch, verify, pack and unpack assets")
    actions = assets.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every asset, its size and whether it is here")
    fetch = actions.add_parser("fetch", help="download and check what the lessons need")
    fetch.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for a server")
    verify = actions.add_parser("verify", help="check fetched assets against their checksums")
    pack = actions.add_parser("pack", help="write every fetched asset into one archive")
    unpack = actions.add_parser("unpack", help="put a pack's assets into this machine's caches")
    for action in (pack, unpack):
        action.add_argument("file", help="the archive, e.g. course-assets.tar")
    for action in (fetch, verify, pack):
        action.add_argument("names", nargs="*", help="asset names (see `list`)")

    quiz = commands.add_parser("quiz", help="export quiz results, make a gradebook, check banks")
    actions = quiz.add_subparsers(dest="action", required=True)
    export = actions.add_parser("export", help="copy your quiz results to a file to hand in")
    export.add_argument("--to", type=Path, help="file or folder (default: ./quiz-results-*.json)")
    export.add_argument("--learner", help="the name to record (default: your login)")
    book = actions.add_parser("gradebook", help="merge learners' results files into one CSV")
    book.add_argument("sources", nargs="+", type=Path, help="results files, or folders of them")
    book.add_argument("-o", "--output", type=Path, help="the CSV to write (default: stdout)")
    actions.add_parser("validate", help="check quiz banks and the glossary") \
        .add_argument("banks", nargs="+", type=Path)

    course = commands.add_parser("course", help="for instructors: student versions, check runs")
    actions = course.add_subparsers(dest="action", required=True)
    student = actions.add_parser("student", help="write the notebooks without their solutions")
    student.add_argument("-o", "--output", type=Path, default=Path("student-notebooks"))
    run = actions.add_parser("run", help="execute every notebook; report time, memory, errors")
    run.add_argument("--full", action="store_true", help="full size (default: smoke size)")
    run.add_argument("--standin", action="store_true", help="random weights, generated data")
    run.add_argument("--offline", action="store_true", help="never download")
    run.add_argument("--installed", action="store_true", help="on the installed model and photos")
    run.add_argument("-o", "--output", type=Path, default=Path("course-run"))
    run.add_argument("--timeout", type=int, default=600, help="seconds any one cell may take")
    for action in (student, run):
        action.add_argument("sources", nargs="*", type=Path,
                            help="notebooks or folders (default: the course's notebooks/)")
    args = parser.parse_args(argv)
    handlers = {"doctor": _doctor, "assets": _assets, "quiz": _quiz, "course": _course}
    return handlers[args.command](args)
