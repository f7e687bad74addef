"""``python -m labkit assets list | fetch [NAMES] | verify [NAMES] | pack FILE | unpack FILE``."""

from __future__ import annotations

import argparse
import sys

from labkit.assets import store
from labkit.assets.download import CONNECT_TIMEOUT, DownloadError
from labkit.instructor.packs import PackError, pack, unpack
from labkit.assets.registry import REGISTRY, describe_size, get_asset

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="every asset with its size and whether it is here")
    fetch = actions.add_parser("fetch", help="download and verify assets (default: all the "
                                             "lessons need; --all adds the optional ones)")
    fetch.add_argument("names", nargs="*", help="asset names (see `list`)")
    fetch.add_argument("--all", action="store_true", help="also the optional large datasets")
    fetch.add_argument("--timeout", type=float, default=CONNECT_TIMEOUT,
                       help=f"seconds to wait for a server (default {CONNECT_TIMEOUT:g})")
    verify = actions.add_parser("verify", help="re-check fetched assets against their checksums")
    verify.add_argument("names", nargs="*")
    pack_ = actions.add_parser("pack", help="write everything fetched into one archive")
    pack_.add_argument("file", help="archive to write, e.g. course-assets.tar")
    pack_.add_argument("names", nargs="*", help="only these assets (default: all fetched)")
    unpack_ = actions.add_parser("unpack", help="put a pack's assets into this machine's caches")
    unpack_.add_argument("file")


def _assets(names: list[str], *, everything: bool = False):
    if names:
        return [get_asset(name) for name in names]
    return [a for a in REGISTRY.values() if everything or not a.optional]


def _list() -> int:
    rows = [("name", "kind", "size", "status", "source")]
    for asset in REGISTRY.values():
        note = " (optional)" if asset.optional else ""
        rows.append((asset.name, asset.kind + note, describe_size(asset.size),
                     store.status(asset), asset.source))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    return 0


def _fetch(args) -> int:
    failed = []
    for asset in _assets(args.names, everything=args.all):
        try:
            where = store.fetch(asset, timeout=args.timeout)
            print(f"ok       {asset.name}: {where}")
        except DownloadError as exc:
            failed.append(asset.name)
            print(f"FAILED   {asset.name}: {exc}", file=sys.stderr)
    if failed:
        print(f"\n{len(failed)} asset(s) not fetched: {' '.join(failed)}. Fix: check the "
              "network (`python -m labkit doctor`) and run the same command again.", file=sys.stderr)
    return 1 if failed else 0


def _verify(names: list[str]) -> int:
    assets = [get_asset(n) for n in names] if names else [
        a for a in REGISTRY.values() if store.status(a) == "present"]
    if not assets:
        print("Nothing is fetched yet, so there is nothing to verify.")
        return 0
    bad = 0
    for asset in assets:
        ok, detail = store.verify(asset)
        bad += not ok
        print(f"{'ok' if ok else 'BAD':8} {asset.name}: {detail}")
    if bad:
        print(f"\n{bad} asset(s) failed. Fix: delete them (see `list` for where) and fetch "
              "them again.", file=sys.stderr)
    return 1 if bad else 0


def run(args) -> int:
    try:
        if args.action == "list":
            return _list()
        if args.action == "fetch":
            return _fetch(args)
        if args.action == "verify":
            return _verify(args.names)
        if args.action == "pack":
            packed = pack(args.file, args.names)
            print(f"Packed {len(packed)} asset(s) into {args.file}: {' '.join(packed)}")
            return 0
        results = unpack(args.file)
        for name, (ok, detail) in results.items():
            print(f"{'ok' if ok else 'BAD':8} {name}: {detail}")
        return 0 if all(ok for ok, _ in results.values()) else 1
    except (KeyError, PackError, OSError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, KeyError) else exc}", file=sys.stderr)
        return 2
