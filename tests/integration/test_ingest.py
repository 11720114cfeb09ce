import datetime as dt
import gzip
import json

import polars as pl
import pytest

from ncf_tasks import layout, rawio
from ncf_tasks.errors import DataError
from ncf_tasks.ingest import run_ingest
from ncf_tasks.ingest_core import SORT_COLUMNS

DAY = "2026-11-26"


def events(n, start=0, day=DAY):
    t0 = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    return pl.DataFrame(
        {
            "user_id": [f"u{i % 7}" for i in range(start, start + n)],
            "item_id": [f"i{i % 11}" for i in range(start, start + n)],
            "event_ts": [t0 + dt.timedelta(minutes=i) for i in range(start, start + n)],
            "event_type": ["view"] * n,
            "value": [float(i) for i in range(start, start + n)],
        }
    ).cast({"event_ts": pl.Datetime("us", "UTC")})


def put(storage, name, df, fmt, gz=False, day=DAY):
    storage.put_bytes(layout.raw_partition(day) + name, rawio.encode(df, fmt, gz))


def lake(storage, day=DAY):
    return storage.read_parquet(layout.lake_file(day))


def test_all_formats_gzip_and_duplicates(storage):
    put(storage, "a.csv", events(10), "csv")
    put(storage, "b.jsonl.gz", events(10, 10), "jsonl", gz=True)
    put(storage, "c.parquet", events(10, 20), "parquet")
    put(storage, "d.csv.gz", events(5, 25), "csv", gz=True)  # 5 exact re-sends of c.parquet rows
    storage.put_bytes(layout.raw_partition(DAY) + "_SUCCESS", b"")
    r = run_ingest(storage.settings, date=DAY)
    assert (r["status"], r["files"], r["rows_read"], r["rows_written"], r["duplicates_dropped"]) == ("ok", 4, 35, 30, 5)
    df = lake(storage)
    assert df.schema == rawio.canonical_schema() and df.height == 30 and df["event_ts"].is_sorted()
    manifest = storage.get_json(layout.ingest_manifest(DAY))
    assert [s["key"].rsplit("/", 1)[1] for s in manifest["sources"]] == ["a.csv", "b.jsonl.gz", "c.parquet", "d.csv.gz"]


def test_rerun_replaces_never_duplicates_and_keeps_raw(storage):
    put(storage, "a.csv", events(10), "csv")
    raw_before = storage.list(layout.raw_partition(DAY))
    first = run_ingest(storage.settings, date=DAY)
    storage.put_json(layout.validated_marker(DAY), {"ok": True})
    second = run_ingest(storage.settings, date=DAY)
    assert first["rows_written"] == second["rows_written"] == lake(storage).height == 10
    assert storage.get_bytes(layout.lake_file(DAY))  # one object, replaced
    assert storage.list_keys(layout.lake_partition(DAY)) == [layout.ingest_manifest(DAY), layout.lake_file(DAY)]
    assert storage.list(layout.raw_partition(DAY)) == raw_before  # raw untouched (same etags)
    # new data arrived late: rerun picks it up, replacing the partition
    put(storage, "late.csv", events(3, 100), "csv")
    assert run_ingest(storage.settings, date=DAY)["rows_written"] == 13 == lake(storage).height


def test_empty_day_is_a_distinct_outcome(storage):
    r = run_ingest(storage.settings, date="2026-11-25")
    assert r["status"] == "no_data" and r["files"] == 0 and not storage.list_keys("lake/")


def test_header_only_file_gives_an_empty_partition_for_validation_to_judge(storage):
    storage.put_bytes(layout.raw_partition(DAY) + "a.csv", b"user_id,item_id,event_ts\n")
    r = run_ingest(storage.settings, date=DAY)
    assert r["status"] == "ok" and r["rows_written"] == 0 and lake(storage).height == 0


def test_malformed_file_names_file_and_line_and_writes_nothing(storage):
    put(storage, "good.csv", events(5), "csv")
    storage.put_bytes(layout.raw_partition(DAY) + "bad.csv", b"user_id,item_id,event_ts\nu1,i1\n")
    with pytest.raises(
        DataError,
        match=rf"s3://{storage.bucket}/raw/interactions/dt={DAY}/bad\.csv: not a valid CSV file, line 2: 2 fields where the header has 3",
    ):
        run_ingest(storage.settings, date=DAY)
    assert storage.list_keys("lake/") == []


def test_wrong_column_names_then_mapping(storage):
    storage.put_bytes(
        layout.raw_partition(DAY) + "a.jsonl",
        json.dumps({"uid": "u1", "sku": "i1", "ts": "2026-11-26T01:00:00Z"}).encode(),
    )
    with pytest.raises(
        DataError, match=r"a\.jsonl: required column 'user_id' .* columns present: \['uid', 'sku', 'ts'\]"
    ):
        run_ingest(storage.settings, date=DAY)
    mapped = storage.settings.replace(raw_user_col="uid", raw_item_col="sku", raw_ts_col="ts")
    assert run_ingest(mapped, date=DAY)["rows_written"] == 1


def test_gzip_bad_bytes(storage):
    storage.put_bytes(layout.raw_partition(DAY) + "x.csv.gz", gzip.compress(b"user_id,item_id,event_ts\n")[:10])
    with pytest.raises(DataError, match=r"x\.csv\.gz: not a valid gzip file"):
        run_ingest(storage.settings, date=DAY)


def parts(storage, day=DAY):
    keys = sorted(k for k in storage.list_keys(layout.lake_partition(day)) if layout.is_lake_part(k))
    return keys, storage.read_parquet(keys)


def test_mapped_ingest_equals_the_single_task_and_replaces_it(storage):
    """File groups, then the commit: re-sends across files (same timestamp, other file; also without a time),
    rows before the day, three formats. The parts hold the single task's rows, each part sorted; the part that
    holds rows an earlier part holds is rewritten without them; each path replaces the other's files, and
    validate and build read the parts."""
    from ncf_tasks.build import validated_partitions
    from ncf_tasks.ingest_mapped import run_ingest_mapped
    from ncf_tasks.validate import run_validate

    day = events(24 * 60 // 2, day=DAY).with_columns(pl.col("event_ts") + pl.duration(minutes=pl.int_range(pl.len())))
    early = events(3, day="2026-11-25").with_columns(pl.col("event_ts") + dt.timedelta(hours=23, minutes=30))
    untimed = events(1, 5).with_columns(pl.lit(None, pl.Datetime("us", "UTC")).alias("event_ts"))
    put(storage, "a.csv", pl.concat([early, day.slice(0, 300), untimed]), "csv")
    put(storage, "b.jsonl.gz", pl.concat([day.slice(300, 300), untimed]), "jsonl", gz=True)  # re-sent, no time
    put(storage, "c.parquet", pl.concat([day.slice(600), day.slice(100, 40)]), "parquet")  # 40 re-sends of a.csv
    single = run_ingest(storage.settings, date=DAY)
    whole = lake(storage)
    out = run_ingest_mapped(storage.settings, date=DAY, groups=4)  # capped by the 3 files
    keys, mapped = parts(storage)
    assert keys == [layout.lake_part(DAY, g, 3) for g in range(3)] and out["parts_rewritten"] == keys[1:]
    assert mapped.sort(list(SORT_COLUMNS), nulls_last=True).equals(whole)
    assert all(storage.read_parquet(k)["event_ts"].is_sorted(nulls_last=True) for k in keys)
    assert (
        (out["rows_read"], out["rows_written"], out["duplicates_dropped"])
        == (single["rows_read"], single["rows_written"], single["duplicates_dropped"])
        == (765, 724, 41)
    )
    assert storage.get_json(layout.ingest_manifest(DAY))["parts"] == keys
    run_ingest(storage.settings, date=DAY)  # the single path replaces the parts again
    assert parts(storage)[0] == [layout.lake_file(DAY)] and lake(storage).equals(whole)

    storage.delete_prefix(layout.raw_partition(DAY))  # rotated logs: groups meet at their edges only
    put(storage, "a.csv", pl.concat([early, day.slice(0, 300)]), "csv")
    put(storage, "b.jsonl.gz", day.slice(300, 300), "jsonl", gz=True)
    put(storage, "c.parquet", day.slice(599), "parquet")  # one re-send, at the boundary instant
    single = run_ingest(storage.settings, date=DAY)
    whole = lake(storage)
    out = run_ingest_mapped(storage.settings, date=DAY, groups=3)
    keys, mapped = parts(storage)
    assert out["parts_rewritten"] == [keys[2]] and mapped.equals(whole)  # row for row: the day stays in time order
    assert out["rows_written"] == single["rows_written"] == 723
    assert run_validate(storage.settings.replace(ts_tolerance_minutes=60), date=DAY)["rows"] == 723
    assert [p["key"] for p in validated_partitions(storage, DAY, 0)[0]] == keys


def test_mapped_ingest_of_files_that_each_span_the_day(storage, monkeypatch):
    """Collectors that do not rotate: every file spans the day, so every pair of parts overlaps, and rows are
    re-sent into several files (one into all four). The commit reads the overlap in many small windows (each
    row once, all parts at a time), the earliest part keeps a shared row, and the parts hold the single task's
    rows, each part still sorted."""
    from ncf_tasks import ingest_mapped

    monkeypatch.setattr(ingest_mapped, "SORT_ROWS", 16)
    monkeypatch.setattr(ingest_mapped, "WINDOW_ROWS", 40)
    day = events(400).sample(fraction=1.0, shuffle=True, seed=7)
    resent = day.slice(0, 30)
    untimed = events(2, 50).with_columns(pl.lit(None, pl.Datetime("us", "UTC")).alias("event_ts"))
    files = [
        pl.concat([day.slice(100 * f, 100), resent.slice(10 * f, 10), resent.slice(0, 1), untimed]) for f in range(4)
    ]
    for f, frame in enumerate(files):
        put(storage, f"host{f}.csv", frame, "csv")
    single = run_ingest(storage.settings, date=DAY)
    whole = lake(storage)
    plan = ingest_mapped.plan_ingest(storage.settings, date=DAY, groups=4)
    done = [
        ingest_mapped.ingest_group(storage.settings, date=DAY, group=t["index"], groups=t["n"], keys=t["keys"])
        for t in plan["tasks"]
    ]
    out = ingest_mapped.commit_ingest(storage.settings, date=DAY, parts=done)
    keys, mapped = parts(storage)
    assert mapped.sort(list(SORT_COLUMNS), nulls_last=True).equals(whole) and whole.height == 402
    assert all(storage.read_parquet(k)["event_ts"].is_sorted(nulls_last=True) for k in keys)
    assert (out["rows_written"], out["duplicates_dropped"]) == (single["rows_written"], single["duplicates_dropped"])
    assert out["parts_rewritten"] == keys[1:]  # each later file re-sent rows of an earlier one (and the untimed two)
    again = ingest_mapped.commit_ingest(storage.settings, date=DAY, parts=done)  # a retry: nothing left to drop
    assert again["parts_rewritten"] == [] and again["rows_written"] == 402


def test_mapped_ingest_refuses_an_incomplete_day_and_keeps_it_unvalidated(storage):
    from ncf_tasks.ingest_mapped import commit_ingest, ingest_group, plan_ingest

    put(storage, "a.csv", events(100), "csv")
    put(storage, "b.csv", events(100, 100), "csv")
    storage.put_json(layout.validated_marker(DAY), {"ok": True})
    put(storage, "c.csv", pl.concat([events(100, 200), events(5, 150)]), "csv")  # 5 re-sends of b.csv
    plan = plan_ingest(storage.settings, date=DAY, groups=3)
    assert plan["status"] == "mapped" and [t["keys"] for t in plan["tasks"]] == [
        [layout.raw_partition(DAY) + f] for f in ("a.csv", "b.csv", "c.csv")
    ]
    assert not storage.exists(layout.validated_marker(DAY))  # the builder ignores the day until it is validated again
    t = plan["tasks"]
    done = [ingest_group(storage.settings, date=DAY, group=g, groups=3, keys=t[g]["keys"]) for g in (0, 2)]
    with pytest.raises(DataError, match="not one complete set of 2 file group"):
        commit_ingest(storage.settings, date=DAY, parts=done)
    forged = [done[0], {**done[0], "group": 1, "key": layout.lake_part(DAY, 1, 3)}, done[1]]
    with pytest.raises(DataError, match=r"part\(s\) .*part-00001-of-00003.parquet.* missing; re-run their file groups"):
        commit_ingest(storage.settings, date=DAY, parts=forged)
    assert not storage.exists(layout.ingest_manifest(DAY))
    done.insert(1, ingest_group(storage.settings, date=DAY, group=1, groups=3, keys=t[1]["keys"]))
    first = commit_ingest(storage.settings, date=DAY, parts=done)
    again = commit_ingest(storage.settings, date=DAY, parts=done)  # a retry after the rewrite: nothing left to drop
    assert (first["rows_written"], first["duplicates_dropped"], len(first["parts_rewritten"])) == (300, 5, 1)
    assert (again["rows_written"], again["duplicates_dropped"], again["parts_rewritten"]) == (300, 5, [])
    assert parts(storage)[1].sort("event_ts").equals(events(300))
