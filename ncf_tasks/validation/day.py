"""Validate one curated day with Great Expectations; quarantine it and stop the run on failure.

``validate_day`` is shared by the ``validate`` and ``backfill`` stages.

The rules are data: ``include/expectations/interactions.json`` (a GX 1.x suite) whose thresholds are
``$PARAMETER`` references filled from the run's settings. GX validates pandas frames only, so the
partition is converted once (Arrow-backed, no per-value Python objects). Every validation, passed or
failed, publishes GX Data Docs to ``reports/validation/dt=D/``. Two hard rules run in polars beside the
suite (they are in the error and the validation result, not in the Data Docs): ``value_finite`` (NaN
and infinity pass GX's range checks) and ``id_chars`` (control, zero-width and bidirectional characters,
or whitespace at either end of an id: GX's regex check is Python's ``re`` row by row).

Fail closed: on any failed rule the batch and the validation result are copied to
``lake/quarantine/dt=D/``, the curated partition is removed (a later build cannot read it), and
``ValidationFailed`` lists each failed rule with its observed value and example rows. Raw logs are
never touched. Soft rules (``volume_band``, ``duplicate_rate``, ``max_user_share``) may be waived for a run by an operator;
hard rules cannot. A passing validation writes ``_validated.json`` next to the partition; the builder
reads only partitions that carry it.
"""

from __future__ import annotations

import datetime as dt
import logging
import tempfile
import time
from pathlib import Path

from ncf_tasks import layout
from ncf_tasks.config import Settings
from ncf_tasks.errors import NoDataError, ValidationFailed
from ncf_tasks.storage import Storage
from ncf_tasks.validation import quarantine
from ncf_tasks.validation.docs import upload_data_docs
from ncf_tasks.validation.suite import days_before, suite_parameters, validate_frame

log = logging.getLogger(__name__)


def history_counts(storage: Storage, day: str, days: int) -> list[int]:
    """Row counts of validated partitions among the ``days`` days before ``day`` (from their markers)."""
    d = dt.date.fromisoformat(day)
    counts = []
    for k in range(1, days + 1):
        marker = storage.get_json(layout.validated_marker(d - dt.timedelta(days=k)), default=None)
        if marker and marker.get("rows") is not None:
            counts.append(int(marker["rows"]))
    return counts


def validate_day(settings: Settings, day: str, now: dt.datetime | None = None) -> dict:
    """Validate ``lake/interactions/dt=date/``; raise ValidationFailed after quarantining it."""
    t0 = time.perf_counter()
    now = now or dt.datetime.now(dt.UTC)
    storage = Storage(settings)
    files = [k for k in storage.list_keys(layout.lake_partition(day)) if layout.is_lake_part(k)]
    if not files:
        raise NoDataError(f"no curated partition {storage.uri(layout.lake_file(day))}: run ingest for {day} first")
    manifest = storage.get_json(layout.ingest_manifest(day), default=None)
    df = storage.read_parquet(files)  # one file, or the parts of a mapped ingest
    recent = days_before(day, now) <= settings.volume_recent_days  # else no history is read (a backfill's days)
    params, notes = suite_parameters(
        settings,
        day,
        now=now,
        manifest=manifest,
        history=history_counts(storage, day, settings.volume_history_days) if recent else [],
    )
    with tempfile.TemporaryDirectory(prefix="gx-") as tmp:
        site = Path(tmp) / "site"
        outcomes, gx_result = validate_frame(df, params, site)
        report_prefix = layout.validation_report(day)
        storage.delete_prefix(report_prefix)
        upload_data_docs(storage, site, report_prefix)
    docs_uri = storage.uri(report_prefix + "index.html")
    log.info("validation Data Docs for %s: %s", day, docs_uri)

    failed = [o for o in outcomes if not o.success]
    waived = [o for o in failed if o.soft and o.rule in settings.waive_rules]
    blocking = [o for o in failed if o not in waived]
    for o in waived:
        log.warning("WAIVED by operator (waive_rules=%s): %s", list(settings.waive_rules), o.describe())
    summary = {
        "date": day,
        "rows": df.height,
        "expectations": len(outcomes),
        "failed": [o.describe() for o in blocking],
        "waived": [o.describe() for o in waived],
        "notes": notes,
        "docs_uri": docs_uri,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if blocking:
        quarantine.quarantine(storage, day, {**summary, "gx_result": gx_result})
        msg = (
            f"validation of {storage.uri(files[0] if len(files) == 1 else layout.lake_partition(day))} failed {len(blocking)} of {len(outcomes)} "
            f"expectations; the batch is quarantined under {storage.uri(layout.quarantine(day))} and "
            f"removed from the lake (Data Docs: {docs_uri}):\n  - " + "\n  - ".join(summary["failed"])
        )
        log.error(msg)
        raise ValidationFailed(msg)

    storage.put_json(layout.validated_marker(day), {**summary, "status": "passed"})
    quarantine.resolve(storage, day)
    log.info(
        "validation of %s passed: %d rows, %d expectations, %d waived (%.1fs)",
        day,
        df.height,
        len(outcomes),
        len(waived),
        summary["seconds"],
    )
    return {
        **summary,
        "status": "passed",
        "uri": storage.uri(files[0] if len(files) == 1 else layout.lake_partition(day)),
    }
