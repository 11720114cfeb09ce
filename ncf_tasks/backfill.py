"""Stage: ingest and validate a range of days in one process (a historical load, a user's first data set).

The same work as the nightly ``ingest`` and ``validate``, day by day (``ingest_core.ingest_day`` and
``validation.day.validate_day``), without a process (or an Airflow task) per day: a
MovieLens load of 215 days goes through the pipeline's own ingest and validation, with no hand-made
markers. Days without raw files are skipped; a day that fails validation is quarantined, as always,
and reported, and the backfill goes on with the next day (one bad day must not hide the others).
The volume band does not judge such days (``volume_recent_days``): a historical day's volume says
nothing about tonight's feed. For Airflow, ``ncf_ingest`` backfills run the same stages per day.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from ncf_tasks import layout
from ncf_tasks.config import Settings
from ncf_tasks.errors import ValidationFailed, clip
from ncf_tasks.ingest_core import ingest_day
from ncf_tasks.validation.day import validate_day

log = logging.getLogger(__name__)


def run_backfill(settings: Settings, *, start: str, end: str, now: dt.datetime | None = None) -> dict:
    """Ingest and validate every day in [start, end]; returns counts and the quarantined days."""
    t0 = time.perf_counter()
    first, last = dt.date.fromisoformat(layout.day(start)), dt.date.fromisoformat(layout.day(end))
    days = [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    passed, empty, quarantined, rows = [], [], [], 0
    for n, day in enumerate(days, 1):
        ingested = ingest_day(settings, day)
        if ingested["status"] == "no_data":
            empty.append(day)
            continue
        try:
            rows += validate_day(settings, day, now)["rows"]
            passed.append(day)
        except ValidationFailed as exc:
            lines = str(exc).splitlines()  # the headline, then one line per broken rule
            quarantined.append({"date": day, "why": clip("; ".join(x.strip(" -") for x in lines[1:] or lines), 500)})
        if n % 20 == 0 or n == len(days):
            elapsed = time.perf_counter() - t0
            log.info(
                "backfill: %d/%d days (%d passed, %d quarantined, %d without logs), %.0fs, ETA %.0fs",
                n,
                len(days),
                len(passed),
                len(quarantined),
                len(empty),
                elapsed,
                elapsed / n * (len(days) - n),
            )
    return {
        "start": days[0],
        "end": days[-1],
        "days": len(days),
        "passed": len(passed),
        "rows": rows,
        "without_logs": len(empty),
        "quarantined": quarantined,
        "seconds": round(time.perf_counter() - t0, 1),
    }
