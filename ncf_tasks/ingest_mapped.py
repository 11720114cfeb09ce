"""Ingest of a day too big for one task: mapped over groups of raw files, then one commit.

A day whose raw files exceed ``ingest_split_mb`` is split into ``n`` = min(ceil(MB / ingest_split_mb), files)
groups of raw files, consecutive in name order and of about equal size (``plan_ingest``; smaller days keep
``ingest_core.ingest_day``, one task). ``n`` is capped by the file count because a file is one task's work: one huge
raw file cannot be spread over tasks (its producer should write several).

1. ``ingest_group`` (mapped over file groups): reads its files, sorts and de-duplicates them as the single
   task does, and writes part ``g`` of ``n`` of the day (``layout.lake_part``), returning the time span of
   each row group it wrote;
2. ``commit_ingest``: refuses an incomplete set of parts, then removes the duplicates *across* parts. A
   re-sent row shares its timestamp with the first copy, so two parts can hold one row only where their
   time spans overlap, and only those rows are read: in one pass over the windows of time where two or
   more parts have rows, each window's rows of all those parts together (row groups are pruned by their
   ``event_ts`` statistics). A part holding rows that an earlier part holds is rewritten without them, a
   row group at a time (the earliest part keeps the row). Last, it removes the partition's other data
   files and writes the manifest.

Why no shuffle by hour range (the design before 2026-11-29): it wrote every row to a staging area and read
it back, which doubled the time of the day (BENCHMARKS.md). Collectors rotate files in time, so consecutive
groups touch at an instant and the commit reads a row group or two per boundary. Files that each span the
whole day (collector hosts that do not rotate) make every pair of parts overlap: the commit then reads the
whole day once, a window at a time, and rewrites the parts that share rows. Correct and bounded in memory,
but serial: on a shuffled 10M-row day the commit took 7.2–7.5 s and 380–410 MB, the whole mapped path
2.1–2.4x the single task's time (BENCHMARKS.md). Such days are better left under ``ingest_split_mb``, or rotated by
their producer.

Each part is sorted by every column; the parts concatenated equal the single task's file row for row when
the groups' time spans do not overlap, and as a set of rows always. Like the single path, the plan drops
the day's validation marker first, so the builder never reads a day that is being replaced; a failed task
leaves the day unvalidated and the retry (or a re-run of the DAG) rewrites the same keys.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ncf_tasks import layout, rawio
from ncf_tasks.config import Settings
from ncf_tasks.errors import DataError
from ncf_tasks.ingest_core import LAKE_PARQUET, deduplicated_time_ranges, ingest_day, raw_sources, read_sources
from ncf_tasks.parquet_stream import write_parquet_parts
from ncf_tasks.storage import Storage

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)
MAX_GROUPS = 96  # a finer split than this buys nothing but tasks
# A group task sorts and writes its rows in ranges of SORT_ROWS (one row group each): the sort's working
# set and the writer's buffers are the task's largest once it holds a fraction of the day. The trade, for a
# 2.5M-row group (BENCHMARKS.md, mapped ingest, 2026-12-03): 32K rows hold ~290 MB (0.30 of the single
# task) at ~0.6 CPU s more than 128K (~360 MB) or 512K (~500 MB); memory is what the mapped path is for.
SORT_ROWS = 1 << 15
# The commit reads the parts where they overlap in windows of about this many rows of all parts together:
# on a shuffled 10M-row day, 512K rows took 7.2–7.5 s and 380–410 MB, 128K 11.3 s and 292 MB (BENCHMARKS.md).
WINDOW_ROWS = 1 << 19


def file_groups(sources: list[dict], n: int) -> list[list[dict]]:
    """``sources`` in name order cut into ``min(n, files)`` consecutive runs of about equal bytes: a file goes
    to the run its middle byte falls in, within what keeps every run non-empty. Consecutive, because names
    of rotated logs sort by time: groups then overlap in time only at their edges."""
    ordered = sorted(sources, key=lambda o: o["key"])
    n = min(n, len(ordered))
    total = max(1, sum(o["size"] for o in ordered))
    groups: list[list[dict]] = [[] for _ in range(n)]
    done, g = 0, -1
    for k, o in enumerate(ordered):
        by_bytes = int((done + o["size"] / 2) * n // total)
        g = min(max(by_bytes, g, n - (len(ordered) - k)), g + 1, n - 1)
        groups[g].append(o)
        done += o["size"]
    return groups


def plan_ingest(settings: Settings, *, date: str, groups: int | None = None) -> dict:
    """``status``: 'no_data', 'single' (a day for ``run_ingest``), or 'mapped' with ``tasks``, the list the
    DAG maps ``ingest_group`` over (item ``i``: file group ``i`` of ``n``). ``groups`` forces that split
    whatever the day's size (tests, benchmarks)."""
    day = layout.day(date)
    storage = Storage(settings)
    sources = raw_sources(storage, day, settings)
    total = sum(o["size"] for o in sources)
    base = {
        "date": day,
        "raw_uri": storage.uri(layout.raw_partition(day)),
        "files": len(sources),
        "raw_bytes": total,
        "tasks": [],
    }
    if not sources:
        return {**base, "status": "no_data"}
    n = min(MAX_GROUPS, len(sources), groups or -(-total // (settings.ingest_split_mb * 1_000_000)))
    if n <= 1:
        return {**base, "status": "single"}
    storage.delete([layout.validated_marker(day)])  # the day is being replaced: not readable as validated
    log.info("ingest of %s mapped: %d raw files (%.0f MB) in %d groups", day, len(sources), total / 1e6, n)
    return {
        **base,
        "status": "mapped",
        "tasks": [
            {"date": day, "index": i, "n": n, "keys": [o["key"] for o in g]}
            for i, g in enumerate(file_groups(sources, n))
        ],
    }


def _with_spans(ranges: "Iterator[pl.DataFrame]", spans: list[list]) -> "Iterator[pl.DataFrame]":
    """Pass the sorted ranges (row groups to be) through, noting each one's [first, last] timestamp (epoch µs,
    None when it has none), rows and null timestamps."""
    import polars as pl

    for frame in ranges:
        ts = pl.col("event_ts")
        us = ts.dt.epoch("us")
        lo, hi, nulls = frame.select(us.min().alias("lo"), us.max().alias("hi"), ts.null_count()).row(0)
        spans.append([lo, hi, frame.height, nulls])
        yield frame


def ingest_group(settings: Settings, *, date: str, group: int, groups: int, keys: list[str]) -> dict:
    """Stage (mapped over file groups): the group's files, sorted and de-duplicated, as part ``group`` of the
    day; returns the parts' row counts and the spans ``commit_ingest`` compares."""
    t0 = time.perf_counter()
    day = layout.day(date)
    storage = Storage(settings)
    frames = read_sources(storage, [{"key": k} for k in keys], settings, pieces=True)
    rows_in = sum(f.height for f in frames)
    key = layout.lake_part(day, group, groups)
    storage.abort_uploads(key)  # a crashed earlier try may have left parts behind
    spans: list[list] = []
    ranges = _with_spans(deduplicated_time_ranges(frames, SORT_ROWS), spans)
    rows, nbytes = write_parquet_parts(storage, ranges, key, **LAKE_PARQUET)
    etag = next(o["etag"] for o in storage.list(key) if o["key"] == key)  # the commit knows the part by it
    secs = time.perf_counter() - t0
    log.info(
        "file group %d/%d of %s: %d files, %d rows in, %d written to %s (%.1fs, %.0f rows/s)",
        group + 1,
        groups,
        day,
        len(keys),
        rows_in,
        rows,
        storage.uri(key),
        secs,
        rows_in / max(secs, 1e-9),
    )
    return {
        "date": day,
        "group": group,
        "groups": groups,
        "key": key,
        "files": len(keys),
        "rows_in": rows_in,
        "rows_written": rows,
        "bytes": nbytes,
        "etag": etag,
        "spans": spans,
        "seconds": round(secs, 2),
    }


def _windows(parts: list[dict]) -> list[tuple[int, int] | None]:
    """Where two or more parts have rows: half-open time windows ``[lo, hi)`` (epoch µs), in time order, each
    reaching about ``WINDOW_ROWS`` rows of all parts together (by their row groups' spans), and None for null
    timestamps when two or more parts have some. A re-sent row shares its copy's timestamp, so rows outside
    these windows are in one part only; rotated files give a window an instant wide per boundary."""
    spans = [
        (lo, hi + 1, rows, j) for j, p in enumerate(parts) for lo, hi, rows, _nulls in p["spans"] if lo is not None
    ]
    # the times covered by two or more parts: a sweep over the spans' ends (an end before a start at one time:
    # [a, b) and [b, c) do not meet)
    active: dict[int, int] = {}
    regions: list[list] = []  # [start, end]; end None while open
    for t, delta, j in sorted(
        [(lo, 1, j) for lo, _, _, j in spans] + [(hi, -1, j) for _, hi, _, j in spans], key=lambda e: (e[0], e[1])
    ):
        before = len(active)
        active[j] = active.get(j, 0) + delta
        if not active[j]:
            del active[j]
        if before < 2 <= len(active):
            if regions and regions[-1][1] == t:
                regions[-1][1] = None  # touches the previous region: one region
            else:
                regions.append([t, None])
        elif len(active) < 2 <= before:
            regions[-1][1] = t
    windows: list[tuple[int, int] | None] = []
    for lo, hi in regions:
        bounds = [lo, *_cuts(lo, hi, spans), hi]
        windows += zip(bounds[:-1], bounds[1:])
    if sum(1 for p in parts if any(span[3] for span in p["spans"])) >= 2:
        windows.append(None)
    return windows


def _cuts(lo: int, hi: int, spans: list[tuple[int, int, int, int]]) -> list[int]:
    """Times that cut ``[lo, hi)`` into windows of about ``WINDOW_ROWS`` rows, each span's rows taken as spread
    evenly over its time: a window may end inside a row group, so many parts' row groups over one stretch of
    time still make windows of the budget's size (an instant holding more rows cannot be cut)."""
    edges = sorted(
        e
        for s_lo, s_hi, rows, _ in spans
        if max(s_lo, lo) < min(s_hi, hi)
        for e in ((max(s_lo, lo), rows / (s_hi - s_lo)), (min(s_hi, hi), -rows / (s_hi - s_lo)))
    )
    cuts: list[int] = []
    t, rows, rate = lo, 0.0, 0.0  # rows since the last cut; rows per µs from t on
    for x, change in edges:
        while rate > 0 and rows + rate * (x - t) >= WINDOW_ROWS:
            t, rows = t + max(1, math.ceil((WINDOW_ROWS - rows) / rate)), 0.0
            cuts.append(t)
        rows, t, rate = rows + rate * (x - t), x, rate + change
    return sorted({c for c in cuts if lo < c < hi})  # float rounding may repeat a cut


def _reaches(span: list, window: tuple[int, int] | None) -> bool:
    """Whether a row group's span ([lo, hi, rows, nulls], closed) has rows in ``window`` (None: null times)."""
    lo, hi, _rows, nulls = span
    return bool(nulls) if window is None else lo is not None and lo < window[1] and window[0] <= hi


def _in_window(window: tuple[int, int] | None) -> "pl.Expr":
    import polars as pl

    ts = pl.col("event_ts")
    if window is None:
        return ts.is_null()
    lo, hi = (pl.lit(v).cast(pl.Datetime("us")).dt.replace_time_zone("UTC") for v in window)
    return ts.is_between(lo, hi, closed="left")


def _shared_rows(storage: Storage, parts: list[dict]) -> "dict[int, pl.DataFrame]":
    """Per part (its index), the rows that an earlier part also holds (the earliest part keeps a row). One
    pass over the windows where parts overlap: each window's rows of every part that reaches it are read
    together, so every row is read once, and a window's rows are all the commit holds."""
    import polars as pl

    part = "__part"
    found: dict[int, list] = {}
    for window in _windows(parts):
        reaching = [j for j, p in enumerate(parts) if any(_reaches(span, window) for span in p["spans"])]
        if len(reaching) < 2:
            continue
        keep = _in_window(window)
        rows = pl.concat(
            [
                storage.scan_parquet(parts[j]["key"]).filter(keep).with_columns(pl.lit(j, pl.UInt32).alias(part))
                for j in reaching
            ]
        ).collect()
        later = rows.filter(pl.col(part) > pl.col(part).min().over(rawio.CANONICAL))
        for (j,), shared in later.partition_by(part, as_dict=True, include_key=False).items():
            found.setdefault(j, []).append(shared)
    return {j: pl.concat(frames) for j, frames in found.items()}


def _drop_shared(storage: Storage, key: str, shared: "pl.DataFrame") -> int:
    """Rewrite part ``key`` without ``shared`` (order kept; one atomic upload replaces it); returns its rows.

    A row group at a time, from the part's bytes (about a tenth of its rows' size in memory): the commit
    holds one row group's rows, not the part's, whatever the size of the day."""
    import io

    import polars as pl
    import pyarrow.parquet as pq

    storage.abort_uploads(key)  # a crashed earlier commit may have left parts behind
    part = pq.ParquetFile(io.BytesIO(storage.get_bytes(key)))

    def kept() -> "Iterator[pl.DataFrame]":
        for g in range(part.num_row_groups):
            rows = pl.from_arrow(part.read_row_group(g))
            yield rows.join(shared, on=list(rawio.CANONICAL), how="anti", nulls_equal=True, maintain_order="left")

    return write_parquet_parts(storage, kept(), key, **LAKE_PARQUET)[0]


def commit_ingest(settings: Settings, *, date: str, parts: list[dict]) -> dict:
    """Stage: check the day's parts are complete, drop rows that two parts share, drop what else the
    partition holds, write the manifest. Idempotent: a retry finds nothing left to drop. Imports polars
    only when parts overlap in time or an earlier try rewrote one."""
    t0 = time.perf_counter()
    day = layout.day(date)
    storage = Storage(settings)
    parts = sorted(parts, key=lambda p: p["group"])
    n = len(parts)
    keys = [p["key"] for p in parts]
    if not parts or {p["groups"] for p in parts} != {n} or keys != [layout.lake_part(day, g, n) for g in range(n)]:
        raise DataError(f"ingest of {day}: the parts {keys[:4]} are not one complete set of {n} file group(s)")
    sources = raw_sources(storage, day, settings)  # for the manifest; listed (and checked) before anything changes
    listed = {o["key"]: o for o in storage.list(layout.lake_partition(day))}
    missing = [k for k in keys if k not in listed]
    if missing:
        raise DataError(
            f"ingest of {day}: part(s) {[storage.uri(k) for k in missing[:3]]} missing; re-run their "
            "file groups (the DAG's ingest_files tasks)"
        )
    # a part as its group wrote it has the group's row count; one an earlier try rewrote is counted below
    rows_of = {p["key"]: p["rows_written"] if listed[p["key"]]["etag"] == p["etag"] else None for p in parts}
    rewritten = []
    for j, shared in sorted(_shared_rows(storage, parts).items()):
        rows_of[keys[j]] = _drop_shared(storage, keys[j], shared)
        rewritten.append(keys[j])
        log.info("part %d/%d of %s: %d row(s) that earlier parts hold dropped", j + 1, n, day, shared.height)
    unknown = [k for k, r in rows_of.items() if r is None]
    if unknown:
        import polars

        for k in unknown:
            rows_of[k] = storage.scan_parquet(k).select(polars.len()).collect().item()  # from the footer
    listed = {o["key"]: o for o in storage.list(layout.lake_partition(day))}
    storage.delete([k for k in listed if k not in keys and k != layout.ingest_manifest(day)])
    rows_read = sum(p["rows_in"] for p in parts)
    rows = sum(rows_of.values())
    result = {
        "date": day,
        "raw_uri": storage.uri(layout.raw_partition(day)),
        "files": len(sources),
        "status": "ok",
        "rows_read": rows_read,
        "rows_written": rows,
        "duplicates_dropped": rows_read - rows,
        "bytes": sum(listed[k]["size"] for k in keys),
        "uri": storage.uri(layout.lake_partition(day)),
        "parts": keys,
        "parts_rewritten": rewritten,
        "seconds": round(time.perf_counter() - t0 + sum(p["seconds"] for p in parts), 3),
    }
    storage.put_json(layout.ingest_manifest(day), {**result, "sources": sources})
    log.info(
        "ingested %s in %d file groups: %d rows read, %d written, %d duplicates dropped (%d part(s) rewritten)",
        day,
        n,
        rows_read,
        rows,
        rows_read - rows,
        len(rewritten),
    )
    return result


def run_ingest_mapped(settings: Settings, *, date: str, groups: int | None = None) -> dict:
    """The mapped path in one process (tests, benchmarks): plan, every file group, commit; a day the plan
    leaves to one task goes to ``ingest_core.ingest_day``, as the DAG's ``ingest`` task takes it."""
    plan = plan_ingest(settings, date=date, groups=groups)
    if plan["status"] != "mapped":
        return ingest_day(settings, layout.day(date))
    parts = [ingest_group(settings, date=date, group=t["index"], groups=t["n"], keys=t["keys"]) for t in plan["tasks"]]
    return commit_ingest(settings, date=date, parts=parts)
