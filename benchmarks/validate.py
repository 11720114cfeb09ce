"""Validation time for one curated day of 1M and 10M rows, Great Expectations included.

    python benchmarks/validate.py [--rows 1000000 10000000]

Measures run_validate end to end against the embedded endpoint: read the partition, the single
polars → pandas conversion GX needs, the whole suite, Data Docs build and upload, and the marker.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

from common import PeakRSS, embedded_s3, machine, table, today

from ncf_tasks.generate import SyntheticSpec, synthesize
from ncf_tasks.ingest_core import drop_exact_duplicates
from ncf_tasks.layout import lake_file
from ncf_tasks.storage import Storage
from ncf_tasks.validate import run_validate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    args = ap.parse_args()
    out = []
    for n in args.rows:
        with embedded_s3() as settings:
            df = drop_exact_duplicates(
                synthesize(
                    SyntheticSpec(
                        users=n // 50, items=n // 200, days=1, events_per_day=n, duplicate_rate=0, end_date="2026-11-26"
                    )
                )
            )
            Storage(settings).write_parquet(df, lake_file("2026-11-26"))
            del df
            with PeakRSS() as mem:
                base = mem.peak
                t = time.perf_counter()
                r = run_validate(settings, date="2026-11-26", now=dt.datetime(2026, 11, 27, 2, tzinfo=dt.UTC))
                secs = time.perf_counter() - t
            out.append(
                {
                    "rows": f"{r['rows']:,}",
                    "expectations": r["expectations"],
                    "seconds": f"{secs:.1f}",
                    "rows/s": f"{r['rows'] / secs:,.0f}",
                    "peak RSS growth MB": f"{mem.peak - base:.0f}",
                }
            )
            print(out[-1], flush=True)
    print(f"\nbenchmarks/validate.py — {today()} — {machine()}\n")
    print(table(out))


if __name__ == "__main__":
    main()
