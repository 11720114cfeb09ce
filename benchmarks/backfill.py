"""Backfill time per day: MovieLens loaded as daily raw files, then ingested and validated day by day.

    python benchmarks/backfill.py [--ratings ../shared/data/ml-100k/u.data] [--days N] [--against DIR]

A user's first data set goes through ``python -m ncf_tasks backfill`` (ingest, Great Expectations
validation and its Data Docs, markers), one day at a time. MovieLens days are small (ML-100K: ~470
rows a day over 213 days; ML-1M: ~1,000 days), so the per-day fixed cost is the whole cost. Each
measurement runs in a fresh process against its own embedded endpoint (imports included, as a user
pays them). ``--against DIR`` measures another checkout of this repository (e.g. a ``git worktree`` of
an older commit) with the same data in the same run, for a before/after comparison.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

from common import ROOT, machine, table, today


def measure(code: str, ratings: str, days: int | None) -> dict:
    """Load and backfill in a child process importing ``ncf_tasks`` from ``code`` (its working folder: ``python -c``
    puts it first on the path, ahead of the installed checkout)."""
    script = f"""
import datetime as dt, json, logging, sys, time
logging.disable(logging.WARNING)
t0 = time.perf_counter()
try:
    from ncf_tasks.dev import local_s3
except ImportError:  # a checkout from before ncf_tasks.dev
    from ncf_tasks import local_s3
from ncf_tasks.backfill import run_backfill
from ncf_tasks.config import Settings
from ncf_tasks.movielens import run_load_movielens
imports = time.perf_counter() - t0
server = local_s3.start()
try:
    local_s3.create_bucket(server.url, "bench")
    s = Settings.from_env(env=server.env("bench"))
    loaded = run_load_movielens(s, path={ratings!r})
    first = loaded["first_day"]
    last = loaded["last_day"] if {days!r} is None else (dt.date.fromisoformat(first) + dt.timedelta(days={days!r} - 1)).isoformat()
    t = time.perf_counter()
    out = run_backfill(s, start=first, end=last)
    secs = time.perf_counter() - t
finally:
    server.stop()
print(json.dumps({{"imports_s": imports, "seconds": secs, "days": out["days"], "passed": out["passed"],
                  "without_logs": out["without_logs"], "rows": out["rows"]}}))
"""
    res = subprocess.run([sys.executable, "-c", script], cwd=code, capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ratings", default=str(ROOT.parent / "shared" / "data" / "ml-100k" / "u.data"))
    ap.add_argument("--days", type=int, default=None, help="only the first N days of the data")
    ap.add_argument("--against", default=None, help="another checkout to measure in the same run")
    args = ap.parse_args()
    rows = []
    for label, code in [("this checkout", str(ROOT))] + (
        [("against " + args.against, args.against)] if args.against else []
    ):
        r = measure(code, args.ratings, args.days)
        with_logs = r["days"] - r["without_logs"]
        rows.append(
            {
                "code": label,
                "days (with logs)": f"{r['days']} ({with_logs})",
                "rows": f"{r['rows']:,}",
                "backfill s": f"{r['seconds']:.1f}",
                "s per day with logs": f"{r['seconds'] / with_logs:.3f}",
                "imports s": f"{r['imports_s']:.1f}",
            }
        )
        print(rows[-1], flush=True)
    print(f"\nbenchmarks/backfill.py --ratings {args.ratings} — {today()} — {machine()}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
