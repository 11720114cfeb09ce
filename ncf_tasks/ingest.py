"""Stage ``ingest``: every raw file of one date → one typed, de-duplicated Parquet partition in the lake.

The work is ``ingest_core.ingest_day`` (shared with ``backfill`` and the mapped ingest's small days); a
day above ``ingest_split_mb`` goes through ``ingest_mapped`` instead (the DAG decides, from its plan).
"""

from __future__ import annotations

from ncf_tasks import layout
from ncf_tasks.config import Settings
from ncf_tasks.ingest_core import ingest_day


def run_ingest(settings: Settings, *, date: str) -> dict:
    """Returns counts; ``status`` is 'ok', or 'no_data' when the date has no raw files at all."""
    return ingest_day(settings, layout.day(date))
