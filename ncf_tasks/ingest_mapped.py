"""Ingest of a day too big for one task: mapped over groups of raw files, then one commit.

A day whose raw files exceed ``ingest_split_mb`` is split into ``n`` = min(ceil(MB / ingest_split_mb), files)
groups of raw files, consecutive in name order and of about equal size (``plan_ingest``; smaller days keep
``ingest.run_ingest``, one task). ``n`` is capped by the file count because a file is one task's work: one huge
raw file cannot be spread over tasks (its producer should write several).

1. ``ingest_group`` (mapped over file groups): reads its files, sorts and de-duplicates them as the single
   task does, and writes part ``g`` of ``n`` of the day (``layout.lake_part``), returning the time span of
   each row group it wrote;
2. ``commit_ingest``: refuses an incomplete set of parts, then removes the duplicates *across* parts. A
   re-sent row shares its timestamp with the first copy, so two parts can hold one row only where their
   time spans overlap, and only those rows are read (row groups are pruned by their ``event_ts``
   statistics); a part holding rows that an earlier part holds is rewritten without them (the earliest
   part keeps the row). Last, it removes the partition's other data files and writes the manifest.

Why no shuffle by hour range (the design before 2026-11-29): it wrote every row to a staging area and read
it back, which doubled the time of the day (BENCHMARKS.md). Collectors rotate files in time, so consecutive
groups touch at an instant and the commit reads a row group or two per boundary. Files that each span the
whole day (no rotation) make every pair of parts overlap: the commit then compares each part, one row
group at a time, with the earlier parts' rows of the same span and rewrites the parts that share rows —
correct, but serial: on a shuffled 10M-row day the commit took 7–9 s and ~820 MB, the whole mapped path
~3x the single task's time (BENCHMARKS.md). Such days should stay under ``ingest_split_mb`` or be rotated by
their producer.

Each part is sorted by every column; the parts concatenated equal the single task's file row for row when
the groups' time spans do not overlap, and as a set of rows always. Like the single path, the plan drops
the day's validation marker first, so the builder never reads a day that is being replaced; a failed task
leaves the day unvalidated and the retry (or a re-run of the DAG) rewrites the same keys.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Iterator

from ncf_tasks import layout, rawio
from ncf_tasks.config import Settings
from ncf_tasks.errors import DataError
from ncf_tasks.ingest import LAKE_PARQUET, deduplicated_time_ranges, raw_sources, read_sources
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
WINDOW_ROWS = 1 << 19  # the commit compares parts where they overlap in windows of up to this many rows


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
    base = {"date": day, "raw_uri": storage.uri(layout.raw_partition(day)), "files": len(sources), "raw_bytes": total,
            "tasks": []}
    if not sources:
        return {**base, "status": "no_data"}
    n = min(MAX_GROUPS, len(sources), groups or -(-total // (settings.ingest_split_mb * 1_000_000)))
    if n <= 1:
        return {**base, "status": "single"}
    storage.delete([layout.validated_marker(day)])  # the day is being replaced: not readable as validated
    log.info("ingest of %s mapped: %d raw files (%.0f MB) in %d groups", day, len(sources), total / 1e6, n)
    return {**base, "status": "mapped", "tasks": [{"date": day, "index": i, "n": n, "keys": [o["key"] for o in g]}
                                                  for i, g in enumerate(file_groups(sources, n))]}


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
    log.info("file group %d/%d of %s: %d files, %d rows in, %d written to %s (%.1fs, %.0f rows/s)", group + 1, groups,
             day, len(keys), rows_in, rows, storage.uri(key), secs, rows_in / max(secs, 1e-9))
    return {"date": day, "group": group, "groups": groups, "key": key, "files": len(keys), "rows_in": rows_in,
            "rows_written": rows, "bytes": nbytes, "etag": etag, "spans": spans, "seconds": round(secs, 2)}


def _overlaps(part: dict, earlier: list[dict]) -> list[tuple[int, int] | None]:
    """The windows of ``part`` that earlier parts' spans reach ([lo, hi] epoch µs): per row group of ``part``,
    the hull of its intersections with theirs, consecutive ones merged while the part's rows from the first
    to the last stay within ``WINDOW_ROWS`` (each window is one scan of the part and one of the earlier
    parts); and None for null timestamps when both sides have some."""
    theirs = [span for p in earlier for span in p["spans"]]
    windows: list[tuple[int, int] | None] = []
    span_rows = 0  # the part's rows from the current window's first row group to here
    for lo, hi, rows, _nulls in part["spans"]:
        span_rows += rows
        if lo is None:
            continue
        hits = [(max(lo, span[0]), min(hi, span[1])) for span in theirs if _reaches(span, (lo, hi))]
        if not hits:
            continue
        start, end = min(h[0] for h in hits), max(h[1] for h in hits)
        if windows and span_rows <= WINDOW_ROWS:
            windows[-1] = (windows[-1][0], end)
        else:
            windows.append((start, end))
            span_rows = rows
    if any(s[3] for s in part["spans"]) and any(s[3] for p in earlier for s in p["spans"]):
        windows.append(None)
    return windows


def _reaches(span: list, window: tuple[int, int] | None) -> bool:
    """Whether a row group's span ([lo, hi, rows, nulls]) has rows in ``window`` (None: null times)."""
    lo, hi, _rows, nulls = span
    return bool(nulls) if window is None else lo is not None and lo <= window[1] and window[0] <= hi


def _in_window(window: tuple[int, int] | None) -> "pl.Expr":
    import polars as pl

    ts = pl.col("event_ts")
    if window is None:
        return ts.is_null()
    lo, hi = (pl.lit(v).cast(pl.Datetime("us")).dt.replace_time_zone("UTC") for v in window)
    return ts.is_between(lo, hi, closed="both")


def _shared_rows(storage: Storage, part: dict, earlier: list[dict]) -> "pl.DataFrame | None":
    """Rows of ``part`` that an earlier part also holds (None: their spans do not meet)."""
    import polars as pl

    windows = _overlaps(part, earlier)
    if not windows:
        return None
    found = []
    for window in windows:  # the part's rows in the window against those of the earlier parts that reach it
        keep = _in_window(window)
        mine = storage.scan_parquet(part["key"]).filter(keep).collect()
        reaching = [p["key"] for p in earlier if any(_reaches(span, window) for span in p["spans"])]
        if mine.height and reaching:
            theirs = storage.scan_parquet(reaching).filter(keep).collect()
            found.append(mine.join(theirs, on=list(rawio.CANONICAL), how="semi", nulls_equal=True))
    return pl.concat(found) if found else None


def _drop_shared(storage: Storage, key: str, shared: "pl.DataFrame") -> int:
    """Rewrite part ``key`` without ``shared`` (order kept; one atomic upload replaces it); returns its rows."""
    storage.abort_uploads(key)  # a crashed earlier commit may have left parts behind
    frame = storage.read_parquet(key)
    kept = frame.join(shared, on=list(rawio.CANONICAL), how="anti", nulls_equal=True, maintain_order="left")
    del frame
    return write_parquet_parts(storage, kept.iter_slices(SORT_ROWS), key, **LAKE_PARQUET)[0]


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
        raise DataError(f"ingest of {day}: part(s) {[storage.uri(k) for k in missing[:3]]} missing; re-run their "
                        "file groups (the DAG's ingest_files tasks)")
    # a part as its group wrote it has the group's row count; one an earlier try rewrote is counted below
    rows_of = {p["key"]: p["rows_written"] if listed[p["key"]]["etag"] == p["etag"] else None for p in parts}
    rewritten = []
    for j in range(1, n):
        shared = _shared_rows(storage, parts[j], parts[:j])
        if shared is not None and shared.height:
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
    result = {"date": day, "raw_uri": storage.uri(layout.raw_partition(day)), "files": len(sources), "status": "ok",
              "rows_read": rows_read, "rows_written": rows, "duplicates_dropped": rows_read - rows,
              "bytes": sum(listed[k]["size"] for k in keys),
              "uri": storage.uri(layout.lake_partition(day)), "parts": keys, "parts_rewritten": rewritten,
              "seconds": round(time.perf_counter() - t0 + sum(p["seconds"] for p in parts), 3)}
    storage.put_json(layout.ingest_manifest(day), {**result, "sources": sources})
    log.info("ingested %s in %d file groups: %d rows read, %d written, %d duplicates dropped (%d part(s) rewritten)",
             day, n, rows_read, rows, rows_read - rows, len(rewritten))
    return result


def run_ingest_mapped(settings: Settings, *, date: str, groups: int | None = None) -> dict:
    """The mapped path in one process (tests, benchmarks): plan, every file group, commit; a day the plan
    leaves to one task goes to ``run_ingest``."""
    from ncf_tasks.ingest import run_ingest

    plan = plan_ingest(settings, date=date, groups=groups)
    if plan["status"] != "mapped":
        return run_ingest(settings, date=date)
    parts = [ingest_group(settings, date=date, group=t["index"], groups=t["n"], keys=t["keys"]) for t in plan["tasks"]]
    return commit_ingest(settings, date=date, parts=parts)
