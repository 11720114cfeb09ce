"""Bucket size of the validation Data Docs for a history of days (issue 16: one shared copy of GX's
static assets instead of ~4 MB per day).

    python benchmarks/datadocs.py [--days 30]

Writes ``--days`` days of small synthetic logs, ingests and validates each (the nightly stages), then
reports the objects and bytes under ``reports/validation/``. Run it on two checkouts to compare.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import time

from common import embedded_s3, machine, table, today

from ncf_tasks.generate import SyntheticSpec, run_generate
from ncf_tasks.ingest import run_ingest
from ncf_tasks.storage import Storage
from ncf_tasks.validate import run_validate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=30)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    end = dt.date(2026, 11, 26)
    with embedded_s3() as settings:
        run_generate(
            settings,
            spec=SyntheticSpec(users=300, items=200, days=args.days, events_per_day=500, end_date=end.isoformat()),
        )
        t = time.perf_counter()
        for k in range(args.days - 1, -1, -1):
            day = (end - dt.timedelta(days=k)).isoformat()
            run_ingest(settings, date=day)
            run_validate(settings, date=day, now=dt.datetime(2026, 11, 27, 2, tzinfo=dt.UTC))
        secs = time.perf_counter() - t
        objects = Storage(settings).list("reports/validation/")
    size = sum(o["size"] for o in objects)
    print(f"\nbenchmarks/datadocs.py — {today()} — {machine()}\n")
    print(
        table(
            [
                {
                    "days": args.days,
                    "objects": len(objects),
                    "MB": f"{size / 1e6:.2f}",
                    "MB per day": f"{size / 1e6 / args.days:.3f}",
                    "ingest + validate s": f"{secs:.0f}",
                }
            ]
        )
    )


if __name__ == "__main__":
    main()
