#!/usr/bin/env python3
"""Rebuild sentiment.csv (ids, row order, split) from plain lists of texts.

Row order is a fixed-seed shuffle that does not depend on the input order: rows
are sorted by the SHA-256 hex digest of SEED + text, then numbered s0001, s0002, ...
Split: within each label, in id order, every 5th row (5th, 10th, ...) is test,
the rest train (so 4/5 train, 1/5 test for each label).

    python make_split.py positive.txt negative.txt [out.csv]  # one text per line
    python make_split.py --check [sentiment.csv]              # rebuild from the csv, compare
"""
import csv
import hashlib
import io
import sys
from pathlib import Path

SEED = "labkit-sentiment-v1"
FIELDS = ["id", "text", "label", "split"]
HERE = Path(__file__).resolve().parent


def build_rows(positive, negative):
    items = [(t, "positive") for t in positive] + [(t, "negative") for t in negative]
    if len({t for t, _ in items}) != len(items):
        raise ValueError("duplicate texts")
    items.sort(key=lambda it: hashlib.sha256((SEED + it[0]).encode("utf-8")).hexdigest())
    seen = {"positive": 0, "negative": 0}
    rows = []
    for i, (text, label) in enumerate(items, 1):
        seen[label] += 1
        split = "test" if seen[label] % 5 == 0 else "train"
        rows.append({"id": f"s{i:04d}", "text": text, "label": label, "split": split})
    return rows


def to_csv(rows):
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def main(argv):
    if argv and argv[0] == "--check":
        path = Path(argv[1]) if len(argv) > 1 else HERE / "sentiment.csv"
        text = path.read_text(encoding="utf-8")
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        pos = [r["text"] for r in rows if r["label"] == "positive"]
        neg = [r["text"] for r in rows if r["label"] == "negative"]
        ok = to_csv(build_rows(pos, neg)) == text
        print(f"{'OK' if ok else 'MISMATCH'}: {path.name} ({len(rows)} rows) "
              f"{'matches' if ok else 'differs from'} the rebuild")
        return 0 if ok else 1
    if len(argv) not in (2, 3):
        print(__doc__)
        return 2
    read = lambda p: [ln.strip() for ln in Path(p).read_text(encoding="utf-8").splitlines() if ln.strip()]
    out = Path(argv[2]) if len(argv) == 3 else HERE / "sentiment.csv"
    out.write_text(to_csv(build_rows(read(argv[0]), read(argv[1]))), encoding="utf-8", newline="")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
