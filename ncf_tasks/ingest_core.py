"""A day's raw files into the lake: list, read, sort, de-duplicate and write one Parquet partition.

Shared below the stages that ingest (``ingest``, ``ingest_mapped``, ``backfill``): they never import one
another. ``ingest_day`` is the single-task path whole; the mapped path reuses the readers, the sort and
the lake encoding.

Re-running a date replaces its partition (one object, written by one upload that completes only when
everything succeeded), never appends. Raw files are only read.
Ingesting a date also drops that partition's validation marker first: new data must be validated again
before the training-set builder will read it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ncf_tasks import layout, rawio
from ncf_tasks.config import Settings
from ncf_tasks.errors import DataError
from ncf_tasks.parquet_stream import write_parquet_parts
from ncf_tasks.storage import Storage

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)
READ_WORKERS = 2  # files in flight: overlaps GET with parsing; more only multiplies raw bytes held in memory
ROWS_PER_RANGE = 1 << 19  # rows per time range: one sort's working set and one row group of the lake file
CSV_PIECE_BYTES = 8 << 20  # a plain CSV file is parsed in pieces of this size as it downloads (BENCHMARKS.md)

SORT_COLUMNS = ("event_ts", "user_id", "item_id", "event_type", "value")
# Lake encoding (pyarrow writer options), measured on the 10M-row day (BENCHMARKS.md): dictionaries
# where values repeat a lot, deltas for the nearly sorted timestamps, plain ids (dictionaries there cost
# 20% more encoding time for 7% less size), and statistics only for event_ts, the one column readers
# filter on (string min/max statistics cost another 20%).
LAKE_PARQUET = {
    "use_dictionary": ["event_type", "value"],
    "column_encoding": {"event_ts": "DELTA_BINARY_PACKED"},
    "write_statistics": ["event_ts"],
}


def drop_exact_duplicates(df: "pl.DataFrame") -> "pl.DataFrame":
    """Sort by every column, then keep a row only where it differs from the one before.

    Exact duplicates are collector re-sends. Sorting first is cheaper than ``unique()`` followed by a
    sort (logs arrive nearly in time order, which the sort exploits and ``unique`` scrambles; a row-hash
    variant measured 1.8x slower on such input), and the output is byte-identical across reruns.
    """
    import polars as pl

    if not df.get_column("event_ts").is_sorted(nulls_last=True):
        # rows in arbitrary order: a one-column sort first leaves only ties for the full sort, which
        # is then much cheaper (5 vs 11 CPU s for a shuffled 10M-row day; nothing on sorted logs)
        df = df.sort("event_ts", nulls_last=True)
    df = df.sort(list(SORT_COLUMNS), nulls_last=True)
    first = pl.int_range(pl.len()) == 0
    return df.filter(first | pl.any_horizontal(pl.col(c).ne_missing(pl.col(c).shift(1)) for c in SORT_COLUMNS))


def deduplicated_time_ranges(
    frames: "list[pl.DataFrame]", rows_per_range: int | None = None
) -> "Iterator[pl.DataFrame]":
    """The day sorted and de-duplicated as consecutive time ranges of about ``rows_per_range`` rows
    (``ROWS_PER_RANGE`` unless given).

    Duplicates share their timestamp, so they always fall in one range, and the ranges in time order
    (null timestamps last) concatenate to exactly ``drop_exact_duplicates`` of the whole day. Sorting a
    range at a time keeps the sort's working set (row encoding plus sorted copy) to one range instead
    of twice the day (BENCHMARKS.md). Range edges are quantiles of a sample of the timestamps; all rows
    with one timestamp share a range, however many there are.
    """
    import polars as pl

    total = sum(f.height for f in frames)
    ranges = max(1, -(-total // (rows_per_range or ROWS_PER_RANGE)))
    stride = max(1, total // (ranges * 100))
    sample = pl.concat([f.get_column("event_ts").gather_every(stride) for f in frames]).drop_nulls().sort()
    edges = sample.gather([len(sample) * i // ranges for i in range(1, ranges)]).unique(maintain_order=True)
    bounds = [None, *edges, None]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        keep = in_time_range(lo, hi)
        yield drop_exact_duplicates(pl.concat([f.filter(keep) for f in frames], how="vertical", rechunk=False))


def in_time_range(lo, hi) -> "pl.Expr":
    """Rows with ``lo <= event_ts < hi`` (None: unbounded); the last range (``hi`` None) also takes null
    times, so consecutive ranges from None to None hold every row exactly once."""
    import polars as pl

    ts = pl.col("event_ts")
    keep = pl.lit(True) if lo is None else ts >= lo
    return keep & (ts < hi) if hi is not None else keep | ts.is_null()


def read_raw_file(storage: Storage, key: str, settings: Settings, pieces: bool = False) -> "pl.DataFrame":
    """One raw file in the canonical schema, read whole by ``rawio.read_raw``; with ``pieces``, a plain CSV
    file is parsed piece by piece as it downloads instead (``rawio.read_csv_pieces``; whatever that path
    declines is read whole). Pieces take ~100 MB off the read peak of a 130 MB file, but cost the single
    task ~0.2 s and, oddly, ~60 MB of its peak on the 10M-row day (BENCHMARKS.md), so only the mapped
    ingest's group tasks, which must hold little, use them."""
    import contextlib

    name = storage.uri(key)
    if pieces and rawio.format_of(key) == ("csv", False):
        with contextlib.closing(storage.iter_bytes(key, CSV_PIECE_BYTES)) as stream:
            frame = rawio.read_csv_pieces(stream, name, settings)
        if frame is not None:
            return frame
    return rawio.read_raw(storage.get_bytes(key), name, settings)


def read_sources(
    storage: Storage, sources: list[dict], settings: Settings, pieces: bool = False
) -> "list[pl.DataFrame]":
    """GET and parse every raw file (``read_raw_file``), two at a time (polars and the HTTP reads release
    the GIL, so one file's download overlaps another's parsing); results in listing order."""
    from concurrent.futures import ThreadPoolExecutor

    def read(numbered: tuple[int, dict]) -> "pl.DataFrame":
        i, src = numbered
        frame = read_raw_file(storage, src["key"], settings, pieces)
        log.info("read %s (%d/%d): %d rows", storage.uri(src["key"]), i, len(sources), frame.height)
        return frame

    with ThreadPoolExecutor(max_workers=min(READ_WORKERS, len(sources))) as pool:
        return list(pool.map(read, enumerate(sources, 1)))


def raw_sources(storage: Storage, day: str, settings: Settings) -> list[dict]:
    """The day's raw files (markers skipped). DataError naming the first file of a type no reader takes, or
    the first whose listed size is past ``raw_max_file_mb``: refused from the listing, before any GET
    (``rawio.read_raw`` applies the same limit to what a compressed file expands to)."""
    raw_prefix = layout.raw_partition(day)
    sources = [o for o in storage.list(raw_prefix) if not rawio.is_marker(o["key"])]
    unsupported = [o["key"] for o in sources if rawio.format_of(o["key"]) is None]
    if unsupported:  # skipping them would silently lose their rows
        raise DataError(
            f"{storage.uri(unsupported[0])}: unsupported file type ({len(unsupported)} such file(s) in "
            f"{storage.uri(raw_prefix)}); expected {sorted(rawio.EXTENSIONS)}, optionally .gz, any letter "
            "case. Convert or move them: a day is ingested whole or not at all"
        )
    oversized = [o for o in sources if o["size"] > settings.raw_max_file_mb * 1_000_000]
    if oversized:
        rawio.refuse_oversized(storage.uri(oversized[0]["key"]), oversized[0]["size"], settings)
    return sources


def ingest_day(settings: Settings, day: str) -> dict:
    """Every raw file of ``day`` (YYYY-MM-DD) into its lake partition, in one process. Returns counts;
    ``status`` is 'ok', or 'no_data' when the date has no raw files at all."""

    t0 = time.perf_counter()
    storage = Storage(settings)
    raw_prefix = layout.raw_partition(day)
    sources = raw_sources(storage, day, settings)
    base = {"date": day, "raw_uri": storage.uri(raw_prefix), "files": len(sources)}
    if not sources:
        log.warning("no raw files under %s: nothing to ingest for %s", storage.uri(raw_prefix), day)
        return {**base, "status": "no_data", "rows_read": 0, "rows_written": 0, "duplicates_dropped": 0}

    phases = {}
    t = time.perf_counter()
    frames = read_sources(storage, sources, settings)
    rows_read = sum(f.height for f in frames)
    phases["read"], t = round(time.perf_counter() - t, 3), time.perf_counter()

    storage.delete([layout.validated_marker(day)])
    storage.abort_uploads(layout.lake_file(day))  # a crashed earlier try may have left parts behind
    stale = [
        k
        for k in storage.list_keys(layout.lake_partition(day))  # an earlier ingest's parts included
        if k not in (layout.lake_file(day), layout.ingest_manifest(day))
    ]
    # each time range is encoded while the next is sorted, and uploaded while later ones are encoded
    rows, nbytes = write_parquet_parts(storage, deduplicated_time_ranges(frames), layout.lake_file(day), **LAKE_PARQUET)
    phases["dedupe_write"] = round(time.perf_counter() - t, 3)
    storage.delete(stale)
    result = {
        **base,
        "status": "ok",
        "rows_read": rows_read,
        "rows_written": rows,
        "duplicates_dropped": rows_read - rows,
        "bytes": nbytes,
        "uri": storage.uri(layout.lake_file(day)),
        "seconds": round(time.perf_counter() - t0, 3),
        "phase_seconds": phases,
    }
    storage.put_json(layout.ingest_manifest(day), {**result, "sources": sources})
    log.info(
        "ingested %s: %d files, %d rows read, %d written, %d duplicates dropped (%.0f rows/s)",
        day,
        len(sources),
        rows_read,
        rows,
        rows_read - rows,
        rows_read / max(result["seconds"], 1e-9),
    )
    return result
