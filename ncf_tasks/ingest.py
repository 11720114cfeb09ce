"""Ingest: every raw file of one date → one typed, de-duplicated Parquet partition in the lake.

Re-running a date replaces its partition (one object, one PUT), never appends. Raw files are only read.
Ingesting a date also drops that partition's validation marker first: new data must be validated again
before the training-set builder will read it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ncf_tasks import layout, rawio
from ncf_tasks.config import Settings
from ncf_tasks.storage import Storage

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)
READ_WORKERS = 2  # files in flight: overlaps GET with parsing; more only multiplies raw bytes held in memory


SORT_COLUMNS = ("event_ts", "user_id", "item_id", "event_type", "value")


def drop_exact_duplicates(frames: "pl.DataFrame | list[pl.DataFrame]") -> "pl.DataFrame":
    """Sort by every column, then keep a row only where it differs from the one before.

    Exact duplicates are collector re-sends. Sorting first is cheaper than ``unique()`` followed by a
    sort (logs arrive nearly in time order, which the sort exploits and ``unique`` scrambles; a row-hash
    variant measured 1.8x slower on such input), and the output is byte-identical across reruns.
    Memory: pass the per-file frames as a list (it is emptied here), so the unsorted day is released
    as soon as the sorted one exists instead of living on in the caller.
    """
    import polars as pl

    df = pl.concat(frames, how="vertical", rechunk=False) if isinstance(frames, list) else frames
    if isinstance(frames, list):
        frames.clear()
    del frames
    df = df.sort(list(SORT_COLUMNS), nulls_last=True)
    first = pl.int_range(pl.len()) == 0
    return df.filter(first | pl.any_horizontal(pl.col(c).ne_missing(pl.col(c).shift(1)) for c in SORT_COLUMNS))


def read_sources(storage: Storage, sources: list[dict], settings: Settings) -> "list[pl.DataFrame]":
    """GET and parse every raw file, two at a time (polars and the HTTP reads release the GIL, so one
    file's download and single-threaded parsing steps overlap another's); results in listing order."""
    from concurrent.futures import ThreadPoolExecutor

    def read(numbered: tuple[int, dict]) -> "pl.DataFrame":
        i, src = numbered
        frame = rawio.read_raw(storage.get_bytes(src["key"]), storage.uri(src["key"]), settings)
        log.info("read %s (%d/%d): %d rows", storage.uri(src["key"]), i, len(sources), frame.height)
        return frame

    with ThreadPoolExecutor(max_workers=min(READ_WORKERS, len(sources))) as pool:
        return list(pool.map(read, enumerate(sources, 1)))


def run_ingest(settings: Settings, *, date: str) -> dict:
    """Returns counts; ``status`` is 'ok', or 'no_data' when the date has no raw files at all."""

    t0 = time.perf_counter()
    day = layout.day(date)
    storage = Storage(settings)
    raw_prefix = layout.raw_partition(day)
    sources = [o for o in storage.list(raw_prefix) if rawio.format_of(o["key"]) is not None]
    base = {"date": day, "raw_uri": storage.uri(raw_prefix), "files": len(sources)}
    if not sources:
        log.warning("no raw files under %s: nothing to ingest for %s", storage.uri(raw_prefix), day)
        return {**base, "status": "no_data", "rows_read": 0, "rows_written": 0, "duplicates_dropped": 0}

    phases = {}
    t = time.perf_counter()
    frames = read_sources(storage, sources, settings)
    rows_read = sum(f.height for f in frames)
    phases["read"], t = round(time.perf_counter() - t, 3), time.perf_counter()
    df = drop_exact_duplicates(frames)
    rows = df.height
    phases["dedupe"], t = round(time.perf_counter() - t, 3), time.perf_counter()

    storage.delete([layout.validated_marker(day)])
    stale = [k for k in storage.list_keys(layout.lake_partition(day))
             if k not in (layout.lake_file(day), layout.ingest_manifest(day))]
    # zstd level 1: 1.4% larger than the default level, 0.3 s less per 10M rows (BENCHMARKS.md)
    nbytes = storage.write_parquet(df, layout.lake_file(day), compression_level=1)
    phases["write"] = round(time.perf_counter() - t, 3)
    storage.delete(stale)
    result = {
        **base, "status": "ok", "rows_read": rows_read, "rows_written": rows,
        "duplicates_dropped": rows_read - rows, "bytes": nbytes,
        "uri": storage.uri(layout.lake_file(day)), "seconds": round(time.perf_counter() - t0, 3),
        "phase_seconds": phases,
    }
    storage.put_json(layout.ingest_manifest(day), {**result, "sources": sources})
    log.info("ingested %s: %d files, %d rows read, %d written, %d duplicates dropped (%.0f rows/s)",
             day, len(sources), rows_read, rows, rows_read - rows, rows_read / max(result["seconds"], 1e-9))
    return result
