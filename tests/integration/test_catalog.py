"""The item catalogue: parsing and availability, its validation against the real endpoint, quarantine."""

import io
from pathlib import Path

import polars as pl
import pytest

from ncf_tasks import catalog, layout
from ncf_tasks.errors import DataError, NoDataError, ValidationFailed
from ncf_tasks.validate_catalog import run_validate_catalog

BAD = Path(__file__).resolve().parents[1] / "data" / "bad_catalogs"  # one broken rule per file (README there)
DAY = "2026-11-26"
GOOD_CSV = (
    "item_id,available,available_from,available_until\n"
    "i1,true,,\n"
    "i2,FALSE,,\n"
    "i3,yes,2026-11-27,\n"  # not yet released
    "i4,1,2026-11-01,2026-11-26\n"  # last day: still available
    "i5,y,,2026-11-25T23:30:00-02:00\n"  # a timestamp counts on its UTC date: 2026-11-26
    "i6, No ,,\n"
)


def put_csv(storage, prefix, day, text, name="items.csv"):
    storage.put_bytes(layout.catalog_partition(prefix, day) + name, text.encode())


def test_availability_follows_the_flag_the_dates_and_leaves_out_unlisted_items(settings):
    raw = pl.read_csv(io.StringIO(GOOD_CSV), infer_schema=False).with_columns(
        pl.lit("f").alias("source_file"), pl.lit(1).alias("source_row")
    )
    typed, bad = catalog.parse(raw, settings)
    assert not any(m.any() for m in bad.values())
    assert catalog.available_on(typed, DAY).to_list() == ["i1", "i4", "i5"]
    assert catalog.available_on(typed, "2026-11-27").to_list() == ["i1", "i3"]


def test_catalogue_ids_are_normalised_like_the_logs(settings):
    nfd = "cafe\u0301"  # 'café' with a combining accent: the logs' ingest stores it as NFC
    raw = pl.DataFrame({"item_id": [nfd], "available": ["true"], "available_from": [None], "available_until": [None]})
    typed, _ = catalog.parse(raw.cast(pl.String), settings)
    assert typed["item_id"].to_list() == ["caf\u00e9"]
    typed, _ = catalog.parse(raw.cast(pl.String), settings.replace(id_normalization="none"))
    assert typed["item_id"].to_list() == [nfd]


def test_a_good_snapshot_passes_and_the_newest_one_before_the_day_is_used(storage, settings):
    s = settings.replace(catalog_prefix="catalog/items/")
    assert run_validate_catalog(settings, date=DAY)["status"] == "off"
    put_csv(storage, s.catalog_prefix, "2026-11-20", "item_id,available\nold,true\n")
    put_csv(storage, s.catalog_prefix, "2026-11-25", GOOD_CSV)
    put_csv(storage, s.catalog_prefix, "2026-11-27", "item_id,available\nfuture,true\n")  # after the day
    pq = io.BytesIO()
    pl.DataFrame({"item_id": ["i7"], "available": [True]}).write_parquet(pq)
    storage.put_bytes(layout.catalog_partition(s.catalog_prefix, "2026-11-25") + "more.parquet", pq.getvalue())
    storage.put_bytes(layout.catalog_partition(s.catalog_prefix, "2026-11-25") + "_SUCCESS", b"")
    out = run_validate_catalog(s, date=DAY)
    assert out["status"] == "passed" and out["snapshot"] == "2026-11-25" and out["rows"] == 7
    assert out["available"] == 4  # i1, i4, i5, i7
    lake = storage.read_parquet(layout.catalog_lake_file("2026-11-25"))
    assert lake.columns == ["item_id", "available", "available_from", "available_until"]
    assert storage.get_json(layout.catalog_marker("2026-11-25"))["digest"] == out["digest"]
    assert storage.exists(layout.catalog_report("2026-11-25") + "index.html")

    items = pl.DataFrame({"item_id": ["i1", "i2", "i3", "i4", "unlisted"], "item_idx": [0, 1, 2, 3, 4]})
    got = catalog.availability(storage, s, DAY, items)
    assert got.blocked.tolist() == [1, 2, 4] and got.unlisted == 1 and got.snapshot == "2026-11-25"

    put_csv(storage, s.catalog_prefix, "2026-11-25", GOOD_CSV + "i8,true,,\n")  # replaced after validation
    with pytest.raises(DataError, match=r"changed after its validation .*run validate-catalog for 2026-11-26"):
        catalog.availability(storage, s, DAY, items)
    with pytest.raises(
        NoDataError, match=r"no item catalogue snapshot under .*catalog/items/dt=.*catalog_max_age_days=0"
    ):
        run_validate_catalog(s.replace(catalog_max_age_days=0), date=DAY)


@pytest.mark.parametrize(
    "name, rule, where",
    [
        ("bad_flag.csv", "catalog_values", "'source_row': 2, 'item_id': 'i2', 'available': 'maybe'"),
        (
            "bad_date.csv",
            "catalog_values",
            "'source_row': 1, 'item_id': 'i1', 'available': 'true', 'available_from': '26/11/2026'",
        ),
        ("duplicate_item.csv", "one_row_per_item", "'source_row': 2"),
        ("empty_id.csv", "not_null", "'source_row': 2"),
        ("missing_flag.csv", "not_null", "'source_row': 1"),
        ("invisible_id.csv", "id_chars", "'source_row': 1"),
        ("dates_reversed.csv", "dates_in_order", "'source_row': 1"),
        ("no_item_id_column.csv", "readable", "required catalogue column(s) ['item_id'] missing"),
        ("unclosed_quote.csv", "readable", "not a valid CSV file"),
        ("list_ids.parquet", "readable", "list_ids.parquet: a catalogue column cannot be read as text"),
    ],
)
def test_a_bad_snapshot_is_quarantined_naming_the_file_row_and_rule(storage, settings, name, rule, where):
    s = settings.replace(catalog_prefix="catalog/items")
    if rule == "catalog_values":  # once: an older validated snapshot, and an earlier good version of the day's
        put_csv(storage, s.catalog_prefix, "2026-11-20", "item_id,available\ni1,true\n")
        assert run_validate_catalog(s, date="2026-11-20")["status"] == "passed"
        put_csv(storage, s.catalog_prefix, DAY, "item_id,available\ni1,true\n")
        run_validate_catalog(s, date=DAY)
    stored = "items" + Path(name).suffix
    if stored != "items.csv":
        storage.delete([layout.catalog_partition(s.catalog_prefix, DAY) + "items.csv"])
    storage.put_bytes(layout.catalog_partition(s.catalog_prefix, DAY) + stored, (BAD / name).read_bytes())
    with pytest.raises(ValidationFailed) as err:
        run_validate_catalog(s, date=DAY)
    msg = str(err.value)
    assert f"rule {rule}:" in msg and where.replace(name, stored) in msg
    assert f"catalog/items/dt=2026-11-26/{stored}" in msg
    assert storage.exists(layout.catalog_quarantine(DAY) + stored)
    assert storage.get_json(layout.catalog_quarantine(DAY) + "_status.json")["state"] == "quarantined"
    assert not storage.exists(layout.catalog_marker(DAY)) and not storage.exists(layout.catalog_lake_file(DAY))
    assert storage.exists(layout.catalog_partition(s.catalog_prefix, DAY) + stored)  # raw is never touched
    items = pl.DataFrame({"item_id": ["i1"], "item_idx": [0]})
    with pytest.raises(DataError, match="was not validated"):  # publish cannot fall back on an older snapshot
        catalog.availability(storage, s, DAY, items)


def test_a_huge_bad_value_is_quoted_bounded(storage, settings):
    s = settings.replace(catalog_prefix="catalog/items/")
    put_csv(storage, s.catalog_prefix, DAY, "item_id,available\ni1," + "x" * 100_000 + "\n")
    with pytest.raises(ValidationFailed) as err:
        run_validate_catalog(s, date=DAY)
    assert "rule catalog_values" in str(err.value) and len(str(err.value)) < 5000
    assert len(storage.get_bytes(layout.catalog_quarantine(DAY) + "validation_result.json")) < 50_000


def test_the_demos_synthetic_catalogue_passes_validation(storage, settings):
    from ncf_tasks.generate import SyntheticSpec, run_generate

    s = settings.replace(catalog_prefix="catalog/items/")
    spec = SyntheticSpec(users=50, items=400, days=1, events_per_day=200, end_date=DAY)
    out = run_generate(s, spec=spec, catalog_unavailable=0.1)["catalog"]
    assert 20 < out["unavailable"] < 60
    checked = run_validate_catalog(s, date=DAY)
    assert checked["rows"] == 400 and checked["available"] == 400 - out["unavailable"]
    later = run_validate_catalog(s, date="2026-12-01")["available"]  # the same snapshot, after the releases
    assert checked["available"] < later < 400


def test_a_catalogue_that_shows_nothing_is_quarantined_and_ids_that_never_match_stop_publish(storage, settings):
    s = settings.replace(catalog_prefix="catalog/items/")
    put_csv(storage, s.catalog_prefix, DAY, (BAD / "nothing_available.csv").read_text())
    with pytest.raises(ValidationFailed, match=r"rule some_available: .*observed 0 of 2 items available on 2026-11-26"):
        run_validate_catalog(s, date=DAY)
    put_csv(storage, s.catalog_prefix, DAY, (BAD / "ids_of_another_form.csv").read_text())  # the logs say i1, i2
    run_validate_catalog(s, date=DAY)
    items = pl.DataFrame({"item_id": ["i1", "i2"], "item_idx": [0, 1]})
    with pytest.raises(DataError, match=r"none of the run's 2 items available .*\['i1', 'i2'\].*\['1', '2'\]"):
        catalog.availability(storage, s, DAY, items)
