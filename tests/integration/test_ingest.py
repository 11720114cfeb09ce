import datetime as dt
import gzip
import json

import polars as pl
import pytest

from ncf_tasks import layout, rawio
from ncf_tasks.errors import DataError
from ncf_tasks.ingest import run_ingest

DAY = "2026-11-26"


def events(n, start=0, day=DAY):
    t0 = dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc)
    return pl.DataFrame({
        "user_id": [f"u{i % 7}" for i in range(start, start + n)],
        "item_id": [f"i{i % 11}" for i in range(start, start + n)],
        "event_ts": [t0 + dt.timedelta(minutes=i) for i in range(start, start + n)],
        "event_type": ["view"] * n, "value": [float(i) for i in range(start, start + n)],
    }).cast({"event_ts": pl.Datetime("us", "UTC")})


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
    with pytest.raises(DataError, match=rf"s3://{storage.bucket}/raw/interactions/dt={DAY}/bad\.csv: not a valid CSV file, line 2: 2 fields where the header has 3"):
        run_ingest(storage.settings, date=DAY)
    assert storage.list_keys("lake/") == []


def test_wrong_column_names_then_mapping(storage):
    storage.put_bytes(layout.raw_partition(DAY) + "a.jsonl",
                      json.dumps({"uid": "u1", "sku": "i1", "ts": "2026-11-26T01:00:00Z"}).encode())
    with pytest.raises(DataError, match=r"a\.jsonl: required column 'user_id' .* columns present: \['uid', 'sku', 'ts'\]"):
        run_ingest(storage.settings, date=DAY)
    mapped = storage.settings.replace(raw_user_col="uid", raw_item_col="sku", raw_ts_col="ts")
    assert run_ingest(mapped, date=DAY)["rows_written"] == 1


def test_gzip_bad_bytes(storage):
    storage.put_bytes(layout.raw_partition(DAY) + "x.csv.gz", gzip.compress(b"user_id,item_id,event_ts\n")[:10])
    with pytest.raises(DataError, match=r"x\.csv\.gz: not a valid gzip file"):
        run_ingest(storage.settings, date=DAY)
