"""Ingest of a day too big for one task: mapped over groups of raw files, then over hour ranges.

A day whose raw files exceed ``ingest_split_mb`` is split into ``n`` = min(ceil(MB / ingest_split_mb),
files) groups of raw files and as many hour ranges (``plan_ingest``; smaller days keep ``ingest.run_ingest``,
one task). ``n`` is capped by the file count because a file is read whole: one huge raw file cannot be
spread over tasks (its producer should write several).

1. ``stage_files`` (mapped over file groups): reads its files, splits the rows by hour range and writes
   one staged Parquet per range under ``lake/staging/dt=D/`` — no task holds more than its files;
2. ``merge_range`` (mapped over hour ranges, after every group): reads its range's staged pieces and
   de-duplicates them (``ingest.deduplicated_time_ranges``: duplicates share a timestamp, so hour ranges
   de-duplicate independently), writing part ``r`` of ``n`` of the day (``layout.lake_part``);
3. ``commit_ingest``: refuses an incomplete set of parts, removes the partition's other data files and
   the staging, and writes the ingest manifest (last).

The concatenated parts equal the single task's file row for row (both are sorted by every column within
time ranges that follow each other). Like the single path, the plan drops the day's validation marker
first, so the builder never reads a day that is being replaced; a failed task leaves the day unvalidated
and the retry (or a re-run of the DAG) rewrites the same keys. The first range also takes rows before the
day, the last those after it and rows without a time (``ts_tolerance_minutes`` lets late clocks in).
"""

from __future__ import annotations

import datetime as dt
import logging
import time

from ncf_tasks import layout
from ncf_tasks.config import Settings
from ncf_tasks.errors import DataError
from ncf_tasks.ingest import (LAKE_PARQUET, deduplicated_time_ranges, in_time_range, raw_sources, read_sources)
from ncf_tasks.parquet_stream import write_parquet_parts
from ncf_tasks.storage import Storage

log = logging.getLogger(__name__)
MAX_RANGES = 96  # quarter hours: a finer split than this buys nothing but tasks


def hour_edges(day: str, ranges: int) -> list[dt.datetime | None]:
    """``ranges`` + 1 bounds: None, the day cut into equal spans (UTC), None."""
    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc)
    return [None, *(start + dt.timedelta(days=1) * i / ranges for i in range(1, ranges)), None]


def plan_ingest(settings: Settings, *, date: str, ranges: int | None = None) -> dict:
    """``status``: 'no_data', 'single' (a day for ``run_ingest``), or 'mapped' with ``tasks``, the list the
    DAG maps both ``stage_files`` and ``merge_range`` over (item ``i``: file group ``i`` and hour range ``i``
    of ``n``). ``ranges`` forces that split whatever the day's size (tests, benchmarks)."""
    day = layout.day(date)
    storage = Storage(settings)
    sources = raw_sources(storage, day, settings)
    total = sum(o["size"] for o in sources)
    base = {"date": day, "raw_uri": storage.uri(layout.raw_partition(day)), "files": len(sources), "raw_bytes": total,
            "tasks": []}
    if not sources:
        return {**base, "status": "no_data"}
    n = min(MAX_RANGES, len(sources), ranges or -(-total // (settings.ingest_split_mb * 1_000_000)))
    if n <= 1:
        return {**base, "status": "single"}
    groups: list[list[str]] = [[] for _ in range(n)]
    sizes = [0] * n
    for o in sorted(sources, key=lambda o: -o["size"]):  # largest first into the lightest group
        i = sizes.index(min(sizes))
        groups[i].append(o["key"])
        sizes[i] += o["size"]
    storage.delete([layout.validated_marker(day)])  # the day is being replaced: not readable as validated
    storage.delete_prefix(layout.lake_staging(day))  # pieces of an earlier, failed try
    log.info("ingest of %s mapped: %d raw files (%.0f MB) in %d groups and as many hour ranges", day, len(sources),
             total / 1e6, n)
    return {**base, "status": "mapped",
            "tasks": [{"date": day, "index": i, "n": n, "keys": keys} for i, keys in enumerate(groups)]}


def stage_files(settings: Settings, *, date: str, group: int, ranges: int, keys: list[str]) -> dict:
    """Stage (mapped over file groups): the group's rows, split by hour range, as staged Parquet pieces."""
    import polars as pl

    t0 = time.perf_counter()
    day = layout.day(date)
    storage = Storage(settings)
    frames = read_sources(storage, [{"key": k} for k in keys], settings)
    edges = hour_edges(day, ranges)
    for r, (lo, hi) in enumerate(zip(edges[:-1], edges[1:])):
        keep = in_time_range(lo, hi)
        storage.write_parquet(pl.concat([f.filter(keep) for f in frames], how="vertical"),
                              layout.lake_staged(day, r, group))
    rows = sum(f.height for f in frames)
    secs = time.perf_counter() - t0
    log.info("staged file group %d of %s: %d files, %d rows in %d hour ranges (%.1fs, %.0f rows/s)", group, day,
             len(keys), rows, ranges, secs, rows / max(secs, 1e-9))
    return {"date": day, "group": group, "files": len(keys), "rows_read": rows, "seconds": round(secs, 2)}


def merge_range(settings: Settings, *, date: str, rng: int, ranges: int, groups: int) -> dict:
    """Stage (mapped over hour ranges): de-duplicate one range's staged pieces into part ``rng`` of the day."""
    t0 = time.perf_counter()
    day = layout.day(date)
    storage = Storage(settings)
    keys = [layout.lake_staged(day, rng, g) for g in range(groups)]
    missing = [k for k in keys if not storage.exists(k)]
    if missing:
        raise DataError(f"ingest of {day}, hour range {rng}: staged piece(s) {[storage.uri(k) for k in missing[:3]]} "
                        "missing; re-run the file groups (stage_files) of this day")
    frames = [storage.read_parquet(k) for k in keys]
    rows_in = sum(f.height for f in frames)
    key = layout.lake_part(day, rng, ranges)
    storage.abort_uploads(key)  # a crashed earlier try may have left parts behind
    rows, nbytes = write_parquet_parts(storage, deduplicated_time_ranges(frames), key, **LAKE_PARQUET)
    secs = time.perf_counter() - t0
    log.info("hour range %d/%d of %s: %d rows in, %d written to %s (%.1fs)", rng + 1, ranges, day, rows_in, rows,
             storage.uri(key), secs)
    return {"date": day, "range": rng, "ranges": ranges, "key": key, "rows_in": rows_in, "rows_written": rows,
            "bytes": nbytes, "seconds": round(secs, 2)}


def commit_ingest(settings: Settings, *, date: str, parts: list[dict]) -> dict:
    """Stage: check the day's parts are complete, drop what else the partition holds, write the manifest."""
    t0 = time.perf_counter()
    day = layout.day(date)
    storage = Storage(settings)
    parts = sorted(parts, key=lambda p: p["range"])
    n = len(parts)
    keys = [p["key"] for p in parts]
    if not parts or {p["ranges"] for p in parts} != {n} or keys != [layout.lake_part(day, r, n) for r in range(n)]:
        raise DataError(f"ingest of {day}: the parts {keys[:4]} are not one complete set of {n} hour range(s)")
    sources = raw_sources(storage, day, settings)  # for the manifest; listed (and checked) before anything changes
    missing = [k for k in keys if not storage.exists(k)]
    if missing:
        raise DataError(f"ingest of {day}: part(s) {[storage.uri(k) for k in missing[:3]]} missing; re-run their "
                        "hour ranges (merge_range)")
    stale = [k for k in storage.list_keys(layout.lake_partition(day))
             if k not in keys and k != layout.ingest_manifest(day)]
    storage.delete(stale)
    storage.delete_prefix(layout.lake_staging(day))
    rows_read = sum(p["rows_in"] for p in parts)
    rows = sum(p["rows_written"] for p in parts)
    result = {"date": day, "raw_uri": storage.uri(layout.raw_partition(day)), "files": len(sources), "status": "ok",
              "rows_read": rows_read, "rows_written": rows, "duplicates_dropped": rows_read - rows,
              "bytes": sum(p["bytes"] for p in parts), "uri": storage.uri(layout.lake_partition(day)), "parts": keys,
              "seconds": round(time.perf_counter() - t0 + sum(p["seconds"] for p in parts), 3)}
    storage.put_json(layout.ingest_manifest(day), {**result, "sources": sources})
    log.info("ingested %s in %d hour ranges: %d rows read, %d written, %d duplicates dropped", day, n, rows_read,
             rows, rows_read - rows)
    return result


def run_ingest_mapped(settings: Settings, *, date: str, ranges: int | None = None) -> dict:
    """The mapped path in one process (tests, benchmarks): plan, every file group, every range, commit;
    a day the plan leaves to one task goes to ``run_ingest``."""
    from ncf_tasks.ingest import run_ingest

    plan = plan_ingest(settings, date=date, ranges=ranges)
    if plan["status"] != "mapped":
        return run_ingest(settings, date=date)
    for t in plan["tasks"]:
        stage_files(settings, date=date, group=t["index"], ranges=t["n"], keys=t["keys"])
    parts = [merge_range(settings, date=date, rng=t["index"], ranges=t["n"], groups=t["n"]) for t in plan["tasks"]]
    return commit_ingest(settings, date=date, parts=parts)
