"""Ingest throughput: one day of N synthetic events as raw CSV in the bucket → lake Parquet.

    python benchmarks/ingest.py [--rows 1000000 10000000]

Rows/s counts the whole stage (list, GET over HTTP, parse, cast, de-duplicate, sort, encode, PUT).
Peak memory is this process's resident set during the stage, against the raw CSV size.
"""

from __future__ import annotations

import argparse
import time

from common import PeakRSS, embedded_s3, machine, table, today

from ncf_tasks.generate import SyntheticSpec, run_generate
from ncf_tasks.ingest import run_ingest
from ncf_tasks.storage import Storage


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = ap.parse_args()
    rows = []
    for n in args.rows:
        with embedded_s3() as settings:
            spec = SyntheticSpec(users=max(n // 50, 100), items=max(n // 200, 100), days=1, events_per_day=n,
                                 end_date="2026-11-26", duplicate_rate=0.01)
            run_generate(settings, spec=spec, fmt="csv", files_per_day=4)
            raw_mb = sum(o["size"] for o in Storage(settings).list("raw/")) / 1e6
            with PeakRSS() as mem:
                base = mem.peak
                t = time.perf_counter()
                r = run_ingest(settings, date="2026-11-26")
                secs = time.perf_counter() - t
            phases = " / ".join(f"{k} {v:.1f}" for k, v in r["phase_seconds"].items())
            rows.append({"raw rows": f"{r['rows_read']:,}", "raw CSV MB": f"{raw_mb:.0f}", "phases s": phases,
                         "seconds": f"{secs:.2f}", "rows/s": f"{r['rows_read'] / secs:,.0f}",
                         "peak RSS growth MB": f"{mem.peak - base:.0f}",
                         "peak / raw": f"{(mem.peak - base) / raw_mb:.2f}x"})
            print(rows[-1], flush=True)
    print(f"\nbenchmarks/ingest.py — {today()} — {machine()}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
