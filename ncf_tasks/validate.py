"""Stage ``validate``: one curated day against the rules; quarantine it and stop the run on failure.

The work is ``validation.day.validate_day`` (shared with ``backfill``); the package ``validation`` holds the
suite, the polars rules, the Data Docs and the quarantine.
"""

from __future__ import annotations

import datetime as dt

from ncf_tasks import layout
from ncf_tasks.config import Settings
from ncf_tasks.validation.day import validate_day


def run_validate(settings: Settings, *, date: str, now: dt.datetime | None = None) -> dict:
    """Validate ``lake/interactions/dt=date/``; raise ValidationFailed after quarantining it."""
    return validate_day(settings, layout.day(date), now)
