"""Score the deterministic post-call extractor on labelled transcripts.

    .venv/bin/python bench/intelligence.py [--data bench/data/transcripts.jsonl] [--verbose]

Each line of the data file is one call: ``now``, ``timezone``, the assistant's extraction
``fields``, the ``messages`` and the ``expected`` value per field (null: nothing to extract).
For every field, the extractor's answer is compared with the label:

* correct value              -> true positive
* wrong value                -> false positive *and* false negative (counts against both)
* value where null expected  -> false positive
* nothing where a value was  -> false negative
* nothing where null was     -> correct abstention (reported, not in precision or recall)

precision = TP / (TP + FP), recall = TP / (TP + FN), per field type and overall. Values are
compared after normalisation: numbers numerically, emails case-insensitively, text after
lower-casing and dropping punctuation and extra spaces. The table is printed and written to
bench/results/intelligence.json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from callfleet.conversation.extract.extractor import extract

TYPES = ("email", "phone", "date", "number", "boolean", "select", "text")
# The region a call's numbers and d/m dates are read in: the contact's country. The data
# only records a time zone, so derive it from that.
ZONE_REGION = {"Europe/London": "GB", "Europe/Berlin": "DE", "Europe/Paris": "FR",
               "Europe/Dublin": "IE", "Australia/Sydney": "AU"}


def region_for(tz: str) -> str:
    if tz in ZONE_REGION:
        return ZONE_REGION[tz]
    if tz.startswith("America/"):
        return "US"
    return "US"


def same(ftype: str, got: Any, want: Any) -> bool:
    if ftype == "number":
        try:
            return abs(float(got) - float(want)) < 1e-9
        except (TypeError, ValueError):
            return False
    if ftype == "email":
        return str(got).lower() == str(want).lower()
    if ftype == "text":
        def norm(s: Any) -> str:
            return " ".join(re.sub(r"[^\w\s']", " ", str(s).lower()).split())
        return norm(got) == norm(want)
    return got == want


def score(rows: list[dict[str, Any]], verbose: bool = False) -> dict[str, Any]:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"tp": 0, "fp": 0, "fn": 0, "tn": 0, "n": 0})
    errors: list[dict[str, Any]] = []
    started = time.perf_counter()
    for row in rows:
        now = datetime.fromisoformat(row["now"])
        got = extract(row["messages"], row["fields"], now=now,
                      region=region_for(row["timezone"]), timezone=row["timezone"])
        for f in row["fields"]:
            key, ftype = f["key"], f["type"]
            want = row["expected"].get(key)
            value = got[key].value if key in got else None
            c = counts[ftype]
            c["n"] += 1
            if value is None and want is None:
                c["tn"] += 1
                continue
            if value is not None and want is not None and same(ftype, value, want):
                c["tp"] += 1
                continue
            if value is not None:
                c["fp"] += 1
            if want is not None:
                c["fn"] += 1
            errors.append({"id": row["id"], "field": key, "type": ftype,
                           "expected": want, "got": value})
    elapsed = time.perf_counter() - started
    table = {}
    total = {"tp": 0, "fp": 0, "fn": 0, "tn": 0, "n": 0}
    for ftype in [*TYPES, *sorted(set(counts) - set(TYPES))]:
        if ftype not in counts:
            continue
        c = counts[ftype]
        for k in total:
            total[k] += c[k]
        table[ftype] = _metrics(c)
    table["overall"] = _metrics(total)
    if verbose:
        for e in errors:
            print(f"  {e['id']:<12} {e['field']:<18} {e['type']:<8} "
                  f"expected={e['expected']!r} got={e['got']!r}")
    return {"transcripts": len(rows), "seconds": round(elapsed, 3), "table": table,
            "errors": errors}


def _metrics(c: dict[str, int]) -> dict[str, Any]:
    tp, fp, fn = c["tp"], c["fp"], c["fn"]
    return {
        "fields": c["n"], "tp": tp, "fp": fp, "fn": fn, "empty_ok": c["tn"],
        "precision": round(tp / (tp + fp), 3) if tp + fp else None,
        "recall": round(tp / (tp + fn), 3) if tp + fn else None,
    }


def render(table: dict[str, Any]) -> str:
    lines = ["| type | fields | TP | FP | FN | left empty, correctly | precision | recall |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for ftype, m in table.items():
        p = "–" if m["precision"] is None else f"{m['precision']:.2f}"
        r = "–" if m["recall"] is None else f"{m['recall']:.2f}"
        name = f"**{ftype}**" if ftype == "overall" else ftype
        lines.append(f"| {name} | {m['fields']} | {m['tp']} | {m['fp']} | {m['fn']} "
                     f"| {m['empty_ok']} | {p} | {r} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "bench/data/transcripts.jsonl"))
    ap.add_argument("--out", default=str(ROOT / "bench/results/intelligence.json"))
    ap.add_argument("--verbose", action="store_true", help="list every miss")
    args = ap.parse_args(argv)
    rows = [json.loads(line) for line in Path(args.data).read_text().splitlines() if line.strip()]
    report = score(rows, verbose=args.verbose)
    print(f"{report['transcripts']} transcripts, "
          f"{report['table']['overall']['fields']} fields, {report['seconds']} s")
    print(render(report["table"]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": str(Path(args.data).resolve().relative_to(ROOT))
                               if Path(args.data).resolve().is_relative_to(ROOT) else args.data,
                               **report}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
