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


def drop_exact_duplicates(df: "pl.DataFrame") -> "pl.DataFrame":
    """Sort by every column, then keep a row only where it differs from the one before.

    Exact duplicates are collector re-sends. Sorting first is cheaper than ``unique()`` followed by a
    sort (logs arrive nearly in time order, which the sort exploits and ``unique`` scrambles; a row-hash
    variant measured 1.8x slower on such input), and the output is byte-identical across reruns.
    """
    import polars as pl

    cols = ["event_ts", "user_id", "item_id", "event_type", "value"]
    df = df.sort(cols, nulls_last=True)
    first = pl.int_range(pl.len()) == 0
    return df.filter(first | pl.any_horizontal(pl.col(c).ne_missing(pl.col(c).shift(1)) for c in cols))


def run_ingest(settings: Settings, *, date: str) -> dict:
    """Returns counts; ``status`` is 'ok', or 'no_data' when the date has no raw files at all."""
    import polars as pl

    t0 = time.perf_counter()
    day = layout.day(date)
    storage = Storage(settings)
    raw_prefix = layout.raw_partition(day)
    sources = [o for o in storage.list(raw_prefix) if rawio.format_of(o["key"]) is not None]
    base = {"date": day, "raw_uri": storage.uri(raw_prefix), "files": len(sources)}
    if not sources:
        log.warning("no raw files under %s: nothing to ingest for %s", storage.uri(raw_prefix), day)
        return {**base, "status": "no_data", "rows_read": 0, "rows_written": 0, "duplicates_dropped": 0}

    frames = []
    for i, src in enumerate(sources, 1):
        frame = rawio.read_raw(storage.get_bytes(src["key"]), storage.uri(src["key"]), settings)
        frames.append(frame)
        log.info("read %s (%d/%d): %d rows", storage.uri(src["key"]), i, len(sources), frame.height)
    df = pl.concat(frames, how="vertical", rechunk=False)
    del frames
    rows_read = df.height
    df = drop_exact_duplicates(df)
    rows = df.height

    storage.delete([layout.validated_marker(day)])
    stale = [k for k in storage.list_keys(layout.lake_partition(day))
             if k not in (layout.lake_file(day), layout.ingest_manifest(day))]
    nbytes = storage.write_parquet(df, layout.lake_file(day))
    storage.delete(stale)
    result = {
        **base, "status": "ok", "rows_read": rows_read, "rows_written": rows,
        "duplicates_dropped": rows_read - rows, "bytes": nbytes,
        "uri": storage.uri(layout.lake_file(day)), "seconds": round(time.perf_counter() - t0, 3),
    }
    storage.put_json(layout.ingest_manifest(day), {**result, "sources": sources})
    log.info("ingested %s: %d files, %d rows read, %d written, %d duplicates dropped (%.0f rows/s)",
             day, len(sources), rows_read, rows, rows_read - rows, rows_read / max(result["seconds"], 1e-9))
    return result
