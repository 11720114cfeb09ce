"""Stage ``validate_catalog``: the item catalogue snapshot a day's table will use, judged like the logs.

The snapshot (``catalog.snapshot_for``: the newest dated on or before the day, within
``catalog_max_age_days``) is read, its text parsed (``catalog.parse``) and judged by its own Great
Expectations suite (``include/expectations/catalog.json``) plus two polars rules that name the file and row
of a bad value: ``catalog_values`` (``available`` not a boolean, a date that does not parse) and
``id_chars`` (the logs' rule on invisible characters). A file that cannot be read at all fails the rule
``readable``. Data Docs go to ``reports/validation/catalog/dt=S/``.

Passed: the typed snapshot is written to ``lake/catalog/dt=S/items.parquet`` with ``_validated.json`` (the
digest of the raw files it judged: publish refuses a snapshot that changed since). Failed: the raw files
are copied to ``lake/quarantine_catalog/dt=S/`` with the result, any earlier lake copy of that date is
removed, and ``ValidationFailed`` (exit 5) stops the day's run before publish. The raw snapshot is never
touched. Without ``catalog_prefix`` the stage does nothing (``status: off``): the DAG's task stays green.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
import time
from pathlib import Path

from ncf_tasks import catalog, layout
from ncf_tasks.config import Settings
from ncf_tasks.errors import DataError, ValidationFailed
from ncf_tasks.storage import Storage
from ncf_tasks.validation.docs import upload_data_docs
from ncf_tasks.validation.outcome import Outcome
from ncf_tasks.validation.rules import id_characters, polars_outcome
from ncf_tasks.validation.suite import SUITES, load_suite, run_suite

log = logging.getLogger(__name__)
LAKE_COLUMNS = list(catalog.COLUMNS)


def run_validate_catalog(settings: Settings, *, date: str) -> dict:
    """Validate the catalogue snapshot for ``date``; raise ValidationFailed after quarantining it."""
    t0 = time.perf_counter()
    day = layout.day(date)
    if not catalog.configured(settings):
        return {"status": "off", "date": day, "reason": "no catalog_prefix configured: every item may be shown"}
    storage = Storage(settings)
    snap = catalog.snapshot_for(storage, settings, day)
    where = storage.uri(layout.catalog_partition(settings.catalog_prefix, snap.date))
    typed = None
    try:
        raw = catalog.read_snapshot(storage, settings, snap)
    except DataError as exc:
        outcomes = [
            Outcome("readable", "files_are_csv_or_parquet_with_the_columns", None, False, False, error=str(exc))
        ]
        result: dict = {}
    else:
        typed, bad = catalog.parse(raw, settings)
        outcomes = [
            *(polars_outcome(raw, mask, "catalog_values", _EXPECT[c], c, _WHAT[c]) for c, mask in bad.items()),
            *id_characters(typed),
            _some_available(typed, day),
        ]
        with tempfile.TemporaryDirectory(prefix="gx-") as tmp:
            site = Path(tmp) / "site"
            judged, result = run_suite(
                typed, load_suite(SUITES / "catalog.json"), {"max_id_length": settings.max_id_length}, site, "catalog"
            )
            outcomes += judged
            storage.delete_prefix(layout.catalog_report(snap.date))
            upload_data_docs(storage, site, layout.catalog_report(snap.date))
    failed = [o for o in outcomes if not o.success]
    summary = {
        "date": day,
        "snapshot": snap.date,
        "files": sorted(storage.uri(k) for k in snap.files),
        "digest": snap.digest,
        "rows": 0 if typed is None else typed.height,
        "expectations": len(outcomes),
        "failed": [o.describe() for o in failed],
        "docs_uri": storage.uri(layout.catalog_report(snap.date) + "index.html"),
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if failed:
        _quarantine(storage, snap, {**summary, "gx_result": result})
        msg = (
            f"validation of the item catalogue {where} failed {len(failed)} of {len(outcomes)} rules; it is "
            f"quarantined under {storage.uri(layout.catalog_quarantine(snap.date))} and nothing is published "
            f"with it:\n  - " + "\n  - ".join(summary["failed"])
        )
        log.error(msg)
        raise ValidationFailed(msg)
    storage.write_parquet(typed.select(LAKE_COLUMNS), layout.catalog_lake_file(snap.date))
    available = catalog.available_on(typed, day).len()
    storage.put_json(layout.catalog_marker(snap.date), {**summary, "status": "passed", "available": available})
    log.info(
        "item catalogue %s passed: %d items, %d available on %s (%.1fs)",
        where,
        typed.height,
        available,
        day,
        time.perf_counter() - t0,
    )
    return {
        **summary,
        "status": "passed",
        "available": available,
        "uri": storage.uri(layout.catalog_lake_file(snap.date)),
    }


_EXPECT = {
    "available": "available_is_a_boolean",
    "available_from": "available_from_is_a_date",
    "available_until": "available_until_is_a_date",
}
_WHAT = {
    "available": f"one of {', '.join(catalog.TRUE)} / {', '.join(catalog.FALSE)} (any letter case)",
    "available_from": "an ISO date or datetime, or empty",
    "available_until": "an ISO date or datetime, or empty",
}


def _some_available(typed, day: str) -> Outcome:
    """A snapshot that shows nothing on the day (every flag false, every window closed) is an export gone
    wrong far more often than a shop with nothing to sell; publishing it would empty every list."""
    n = catalog.available_on(typed, day).len()  # a row whose flag did not parse counts as not available
    return Outcome(
        "some_available",
        "at_least_one_item_available_on_the_day",
        "available",
        n > 0,
        False,
        observed=f"{n} of {typed.height} items available on {day}",
        expected="at least 1",
    )


def _quarantine(storage: Storage, snap: catalog.Snapshot, result: dict) -> None:
    """Copy the raw files and the result aside and drop any lake copy of the date: publish cannot use it."""
    q = layout.catalog_quarantine(snap.date)
    storage.delete_prefix(q)
    for key in snap.files:
        storage.copy(key, q + key.rsplit("/", 1)[-1])
    storage.put_json(q + "validation_result.json", result)
    storage.put_json(
        q + "_status.json",
        {
            "state": "quarantined",
            "date": snap.date,
            "at": dt.datetime.now(dt.UTC).isoformat(),
            "failed": result["failed"],
        },
    )
    storage.delete_prefix(layout.catalog_lake(snap.date))
