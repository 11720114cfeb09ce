"""The object-storage layout of DESIGN.md, as key builders (relative to the configured prefix).

Every stage finds its inputs and outputs here, so the layout is written down once. The objects inside
one run (``runs/<run_id>/...``) are named by ``artifacts.RunArtifacts`` below ``run_prefix``.
Standard library only: the DAG files import this at parse time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re

from ncf_tasks.errors import ConfigError, quote

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def day(date: dt.date | str) -> str:
    """'YYYY-MM-DD' for a date or an ISO date string (validated: ConfigError, exit code 2)."""
    if isinstance(date, str):
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", date):
            raise ConfigError(f"date {quote(date)}: expected YYYY-MM-DD")
        try:
            date = dt.date.fromisoformat(date)
        except ValueError as exc:
            raise ConfigError(f"date {quote(date)}: {exc}") from None
    return date.isoformat()


def normalized_prefix(prefix: str) -> str:
    """The configured key prefix as keys start with it: '' or 'a/b/' (surrounding slashes ignored)."""
    p = prefix.strip("/")
    return p + "/" if p else ""


def raw_root() -> str:
    return "raw/interactions/"


def raw_partition(date: dt.date | str) -> str:
    return f"{raw_root()}dt={day(date)}/"


def lake_root() -> str:
    return "lake/interactions/"


def lake_partition(date: dt.date | str) -> str:
    return f"{lake_root()}dt={day(date)}/"


def lake_file(date: dt.date | str) -> str:
    """One Parquet object per day: a single PUT replaces it atomically on re-ingest."""
    return f"{lake_partition(date)}part-0.parquet"


def lake_part(date: dt.date | str, part: int, parts: int) -> str:
    """Part ``part`` of ``parts`` of a day ingested by mapped tasks (one file group each); one part is
    ``lake_file``. Readers take every ``is_lake_part`` object of the partition."""
    return lake_file(date) if parts == 1 else f"{lake_partition(date)}part-{part:05d}-of-{parts:05d}.parquet"


def is_lake_part(key: str) -> bool:
    """Whether ``key`` is a data file of a lake partition (``part-0.parquet`` or ``part-i-of-n.parquet``)."""
    return re.search(r"/dt=\d{4}-\d{2}-\d{2}/part-(0|\d{5}-of-\d{5})\.parquet$", key) is not None


def ingest_manifest(date: dt.date | str) -> str:
    return f"{lake_partition(date)}_ingest.json"


def validated_marker(date: dt.date | str) -> str:
    """Written by validation on success; the builder reads only partitions that carry it."""
    return f"{lake_partition(date)}_validated.json"


def quarantine(date: dt.date | str) -> str:
    return f"lake/quarantine/dt={day(date)}/"


def quarantine_result(date: dt.date | str) -> str:
    """The rejected batch's validation result (failed rules, GX result) next to the batch."""
    return f"{quarantine(date)}validation_result.json"


def quarantine_status(date: dt.date | str) -> str:
    """'quarantined', or 'resolved' once a fixed re-ingest of the day passed validation."""
    return f"{quarantine(date)}_status.json"


def validation_report(date: dt.date | str) -> str:
    return f"reports/validation/dt={day(date)}/"


def catalog_root(prefix: str) -> str:
    """The raw item catalogue's snapshots (``catalog_prefix``, relative to the configured prefix)."""
    return normalized_prefix(prefix)


def catalog_partition(prefix: str, date: dt.date | str) -> str:
    return f"{catalog_root(prefix)}dt={day(date)}/"


def catalog_lake(date: dt.date | str) -> str:
    """A validated catalogue snapshot as the lake holds it (``validate_catalog``)."""
    return f"lake/catalog/dt={day(date)}/"


def catalog_lake_file(date: dt.date | str) -> str:
    return f"{catalog_lake(date)}items.parquet"


def catalog_marker(date: dt.date | str) -> str:
    """Written when the snapshot passed; names the digest of the raw files it judged."""
    return f"{catalog_lake(date)}_validated.json"


def catalog_quarantine(date: dt.date | str) -> str:
    """A rejected snapshot's copy and validation result (the raw snapshot itself is never touched)."""
    return f"lake/quarantine_catalog/dt={day(date)}/"


RUNS = "runs/"  # every run's objects lie below it (``run_prefix``)


def run_prefix(run_id: str) -> str:
    return f"{RUNS}{safe_run_id(run_id)}/"


def dashboard() -> str:
    """The runs dashboard: one page, rebuilt by every run."""
    return "reports/index.html"


def dashboard_plots() -> str:
    """The dashboard's plots as last drawn, with the digest of what they were drawn from (``dashboard``)."""
    return "reports/_plots.json"


def catalog_report(date: dt.date | str) -> str:
    """A catalogue snapshot's Data Docs (``validate_catalog``), beside the days' own."""
    return f"reports/validation/catalog/dt={day(date)}/"


def validation_static() -> str:
    """Data Docs' static assets (CSS, JS, fonts), shared by every day's site instead of copied into each."""
    return "reports/validation/_static/"


def production_pointer() -> str:
    return "models/production.json"


def topk_root() -> str:
    return "recs/topk/"


def topk_partition(date: dt.date | str) -> str:
    return f"{topk_root()}dt={day(date)}/"


def topk_fallback(date: dt.date | str, run_id: str) -> str:
    """The fallback list published with a run's table (users the table has no list for, lists cut short)."""
    return f"{topk_partition(date)}fallback-{safe_run_id(run_id)}.parquet"


def topk_table(date: dt.date | str, run_id: str, part: int = 0, parts: int = 1) -> str:
    """One run's table for a day, or part ``part`` of ``parts`` of it (a sharded publish): a new key per run,
    so publishing never overwrites what a pointer names; the part count is in the name, so re-publishing a
    run with another shard count never mixes parts of the two."""
    if parts == 1:
        return f"{topk_partition(date)}topk-{safe_run_id(run_id)}.parquet"
    return f"{topk_partition(date)}topk-{safe_run_id(run_id)}-part-{part:05d}-of-{parts:05d}.parquet"


def latest_pointer() -> str:
    return f"{topk_root()}_latest.json"


def tuned_profile() -> str:
    """The settings nightly runs pick up (``ncf_tune`` writes it; ``profile.py`` reads it)."""
    return "tuning/profile.json"


def tuning_study(study: str) -> str:
    """One study's folder: ``trials.json`` (its state, for a killed task's retry), ``trials.parquet``,
    ``profile.json`` (this version of the profile) and ``report.html``."""
    return f"tuning/studies/{safe_run_id(study)}/"


def safe_run_id(run_id: str) -> str:
    """A run id as one key segment, one-to-one: an id of letters, digits, '.', '_' and '-' is kept; in
    any other, those characters become '_' ('+' reads as a space in some S3 URL encodings, '/' would
    nest) and a hash of the original id is appended, so 'a/b', 'a:b' and 'a b' never share a folder.
    'scheduled__2026-11-27T02:00:00+00:00' → 'scheduled__2026-11-27T02_00_00_00_00-<8 hex>'."""
    if not isinstance(run_id, str) or not 1 <= len(run_id) <= 200:
        raise ConfigError(f"run id {quote(run_id)}: must have 1-200 characters")
    if set(run_id) <= {"."}:
        raise ConfigError(f"run id {quote(run_id)}: '.' and '..' are not run ids")
    safe = _UNSAFE.sub("_", run_id)
    return safe if safe == run_id else f"{safe}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


def date_of_partition(key: str) -> str | None:
    """The 'YYYY-MM-DD' of a key below a 'dt=YYYY-MM-DD/' folder, or None."""
    m = re.search(r"dt=(\d{4}-\d{2}-\d{2})/", key)
    return m.group(1) if m else None
