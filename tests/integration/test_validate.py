"""Validation against a corpus of real bad files (tests/data/bad_batches/), through the real endpoint."""

import datetime as dt
import io

import polars as pl
import pytest
from helpers import ROOT

from ncf_tasks import layout, rawio
from ncf_tasks.config import Settings
from ncf_tasks.errors import ConfigError, NoDataError, ValidationFailed
from ncf_tasks.ingest import run_ingest
from ncf_tasks.validate import run_validate

CORPUS = ROOT / "tests" / "data" / "bad_batches"
DAY = "2026-11-26"
NOW = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
LATEST = {"partition": "2026-11-25", "run_id": "previous"}


def put_raw(storage, name, day=DAY, data=None):
    storage.put_bytes(layout.raw_partition(day) + name, data if data is not None else (CORPUS / name).read_bytes())


def history(storage, rows=40, days=3):
    """Earlier validated days of ``rows`` rows each: the volume band's reference."""
    for k in range(1, days + 1):
        d = (dt.date.fromisoformat(DAY) - dt.timedelta(days=k)).isoformat()
        body = "user_id,item_id,event_ts,event_type,value\n" + "".join(
            f"u{i % 9},i{i % 13},{d}T{i // 60:02d}:{i % 60:02d}:00Z,view,1.0\n" for i in range(rows)
        )
        put_raw(storage, "h.csv", day=d, data=body.encode())
        run_ingest(storage.settings, date=d)
        run_validate(storage.settings, date=d, now=NOW)


def publish_something(storage):
    storage.put_json(layout.latest_pointer(), LATEST)


def assert_quarantined(storage, raw_name):
    q = layout.quarantine(DAY)
    keys = storage.list_keys(q)
    assert {q + "part-0.parquet", q + "validation_result.json", q + "_status.json", q + "_ingest.json"} <= set(keys)
    assert storage.get_json(q + "_status.json")["state"] == "quarantined"
    assert storage.list_keys(layout.lake_partition(DAY)) == []  # out of the training window
    assert storage.exists(layout.raw_partition(DAY) + raw_name)  # raw never deleted
    assert storage.get_json(layout.latest_pointer()) == LATEST  # publication untouched
    assert storage.exists(layout.validation_report(DAY) + "index.html")  # Data Docs for failures too


CASES = [
    (
        "null_ids.jsonl",
        {},
        r"rule not_null: expect_column_values_to_not_be_null\(user_id\) failed; 1 bad row\(s\); example rows \[\{'row': \d, 'user_id': None",
    ),
    (
        "empty_id.jsonl",
        {},
        r"rule id_length: expect_column_value_lengths_to_be_between\(user_id\) failed \(expected min_value=1, max_value=128\)",
    ),
    ("long_id.csv", {}, r"rule id_length: .*\(user_id\) failed \(expected min_value=1, max_value=128\); 1 bad row"),
    (
        "padded_id.csv",
        {},
        r"rule id_chars: .*\(user_id\) failed \(expected no control, zero-width or bidirectional "
        r"characters, no whitespace at either end\); 1 bad row\(s\); example rows \[\{'row': 4, 'user_id': 'u3 '",
    ),
    (
        "invisible_id.csv",
        {},
        r"rule id_chars: .*\(user_id\) failed .*'user_id': 'u\\x001'.*\n.*rule id_chars: .*\(item_id\) "
        r"failed .*'item_id': 'i\\u200b1'",
    ),
    (
        "other_day.csv",
        {},
        r"rule ts_in_day: expect_column_values_to_be_between\(event_ts\) failed \(expected min_value=2026-11-25 23:00:00\+00:00",
    ),
    (
        "future.csv",
        {"now": dt.datetime(2026, 11, 26, 12, tzinfo=dt.UTC)},
        r"rule ts_not_future: .*\(expected max_value=2026-11-26 12:00:00\+00:00\); 1 bad row",
    ),
    ("out_of_range_value.csv", {}, r"rule value_range: expect_column_values_to_be_between\(value\) failed .*1 bad row"),
    (
        "unknown_event_type.csv",
        {"allowed_event_types": ("view", "click", "purchase")},
        r"rule event_type: expect_column_values_to_be_in_set\(event_type\) failed .*'teleport'",
    ),
    (
        "empty_after_dedup.csv",
        {},
        r"rule min_rows: expect_table_row_count_to_be_between failed \(expected min_value=1\); observed 0",
    ),
    (
        "duplicate_storm.csv",
        {},
        r"rule duplicate_rate: expect_table_row_count_to_be_between failed \(expected min_value=50\); observed 10",
    ),
    (
        "one_user_floods_the_day.csv",
        {},
        r"rule max_user_share: .*failed \(expected max_user_share=0.5\); observed user 'bot-7' holds 40 of 50 events \(80.0%\)",
    ),
    (
        "volume_collapse.csv",
        {"history": True},
        r"rule volume_band: expect_table_row_count_to_be_between failed \(expected min_value=8, max_value=200\); observed 4",
    ),
    (
        "volume_spike.csv",
        {"history": True},
        r"rule volume_band: .*failed \(expected min_value=8, max_value=200\); observed 400",
    ),
]


@pytest.mark.parametrize("name, opts, match", CASES, ids=[c[0] for c in CASES])
def test_bad_raw_batch_is_rejected_and_quarantined(storage, name, opts, match):
    opts = dict(opts)
    if opts.pop("history", False):
        history(storage)
    now = opts.pop("now", NOW)
    settings = storage.settings.replace(**opts)
    publish_something(storage)
    put_raw(storage, name)
    run_ingest(settings, date=DAY)
    with pytest.raises(ValidationFailed, match=match) as err:
        run_validate(settings, date=DAY, now=now)
    assert "quarantined under s3://" in str(err.value) and "Data Docs: s3://" in str(err.value)
    assert_quarantined(storage, name)


@pytest.mark.parametrize(
    "name, match",
    [
        ("lake-missing_column.jsonl", r"rule schema: expect_column_to_exist\(item_id\) failed"),
        (
            "lake-wrong_type.jsonl",
            r"rule schema: expect_column_values_to_be_of_type\(event_ts\) failed \(expected type_=Timestamp\); observed str",
        ),
        # integer ids and no value column: the schema rule names both (the rules checked in polars skip what is absent)
        (
            "lake-int_ids_no_value.jsonl",
            r"(?s)(?=.*rule schema: expect_column_to_exist\(value\) failed)"
            r"(?=.*rule schema: expect_column_values_to_be_of_type\(user_id\) failed)",
        ),
    ],
)
def test_bad_curated_partition_is_rejected(storage, name, match):
    """A producer that bypassed ingest wrote a partition with the wrong schema."""
    df = pl.read_ndjson(io.BytesIO((CORPUS / name).read_bytes()))
    storage.write_parquet(df, layout.lake_file(DAY))
    publish_something(storage)
    with pytest.raises(ValidationFailed, match=match):
        run_validate(storage.settings, date=DAY, now=NOW)
    q = layout.quarantine(DAY)
    assert storage.exists(q + "part-0.parquet") and storage.list_keys(layout.lake_partition(DAY)) == []
    assert storage.get_json(layout.latest_pointer()) == LATEST


def test_clean_day_passes_and_is_marked(storage):
    history(storage)
    good = "user_id,item_id,event_ts,event_type,value\n" + "".join(
        f"u{i % 9},i{i % 13},{DAY}T{i // 60:02d}:{i % 60:02d}:00Z,view,1.0\n" for i in range(50)
    )
    put_raw(storage, "good.csv", data=good.encode())
    run_ingest(storage.settings, date=DAY)
    r = run_validate(storage.settings, date=DAY, now=NOW)
    assert r["status"] == "passed" and r["failed"] == [] and r["rows"] == 50
    assert any("volume_band: median of 3 earlier day(s) = 40 rows" in n for n in r["notes"])
    assert storage.get_json(layout.validated_marker(DAY))["rows"] == 50
    assert storage.list_keys(layout.quarantine(DAY)) == []


def test_soft_rule_waived_by_operator_is_logged(storage):
    put_raw(storage, "duplicate_storm.csv")
    settings = storage.settings.replace(waive_rules=["duplicate_rate"])
    run_ingest(settings, date=DAY)
    r = run_validate(settings, date=DAY, now=NOW)
    assert r["status"] == "passed" and r["failed"] == [] and "rule duplicate_rate" in r["waived"][0]
    assert storage.get_json(layout.validated_marker(DAY))["waived"] == r["waived"]


def test_one_user_share_is_soft_and_not_judged_on_old_days(storage):
    put_raw(storage, "one_user_floods_the_day.csv")
    run_ingest(storage.settings, date=DAY)
    waived = storage.settings.replace(waive_rules=["max_user_share"])
    r = run_validate(waived, date=DAY, now=NOW)
    assert r["status"] == "passed" and "rule max_user_share" in r["waived"][0]
    later = NOW + dt.timedelta(days=30)  # the same day loaded a month later: a backfill, not the nightly feed
    r = run_validate(storage.settings, date=DAY, now=later)
    assert r["status"] == "passed" and any("max_user_share skipped" in n for n in r["notes"])


def test_hard_rules_cannot_be_waived():
    with pytest.raises(
        ConfigError, match=r"waive_rules .*allowed values are \['volume_band', 'duplicate_rate', 'max_user_share'\]"
    ):
        Settings.from_env(env={}, waive_rules=["not_null"])


def test_fixed_reingest_validates_again_and_clears_quarantine(storage):
    put_raw(storage, "null_ids.jsonl")
    run_ingest(storage.settings, date=DAY)
    with pytest.raises(ValidationFailed):
        run_validate(storage.settings, date=DAY, now=NOW)
    # the producer re-delivers a fixed file for the day
    storage.delete([layout.raw_partition(DAY) + "null_ids.jsonl"])
    fixed = (CORPUS / "null_ids.jsonl").read_text().replace("null", '"u9"')
    put_raw(storage, "fixed.jsonl", data=fixed.encode())
    run_ingest(storage.settings, date=DAY)
    assert run_validate(storage.settings, date=DAY, now=NOW)["status"] == "passed"
    status = storage.get_json(layout.quarantine(DAY) + "_status.json")
    assert status["state"] == "resolved" and storage.exists(layout.quarantine(DAY) + "part-0.parquet")


def test_reingest_requires_validation_again(storage):
    put_raw(storage, "volume_collapse.csv")
    run_ingest(storage.settings, date=DAY)
    run_validate(storage.settings, date=DAY, now=NOW)
    assert storage.exists(layout.validated_marker(DAY))
    run_ingest(storage.settings, date=DAY)
    assert not storage.exists(layout.validated_marker(DAY))


def test_missing_partition_is_no_data(storage):
    with pytest.raises(NoDataError, match="run ingest for 2026-11-26 first"):
        run_validate(storage.settings, date=DAY, now=NOW)


def test_canonical_schema_is_what_the_suite_expects():
    assert list(rawio.canonical_schema()) == ["user_id", "item_id", "event_ts", "event_type", "value"]


def test_data_docs_pages_are_what_gx_writes(tmp_path):
    """``gx_docs``' views keep compiled templates across validations; the pages must stay GX's own: the
    same site built with GX's stock views, twice each (the second from a warm template cache), gives the same
    HTML but for the run's time stamps and random element ids."""
    import re

    import great_expectations as gx
    from great_expectations.data_context.types.base import DataContextConfig, InMemoryStoreBackendDefaults
    from great_expectations.expectations import ExpectColumnValuesToNotBeNull

    from ncf_tasks.validation import gx_views as gx_docs

    def build(site: dict, out) -> dict[str, str]:
        ctx = gx.get_context(
            mode="ephemeral",
            project_config=DataContextConfig(
                store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
                data_docs_sites={"s": site},
            ),
        )
        batch = ctx.data_sources.add_pandas("p").add_dataframe_asset("a").add_batch_definition_whole_dataframe("d")
        suite = ctx.suites.add(
            gx.ExpectationSuite(name="s", expectations=[ExpectColumnValuesToNotBeNull(column="user_id")])
        )
        vd = ctx.validation_definitions.add(gx.ValidationDefinition(name="v", data=batch, suite=suite))
        ctx.checkpoints.add(
            gx.Checkpoint(
                name="c", validation_definitions=[vd], actions=[gx.checkpoint.UpdateDataDocsAction(name="docs")]
            )
        ).run(batch_parameters={"dataframe": pl.DataFrame({"user_id": ["u1", None]}).to_pandas()})
        stamp = (
            r"\d{8}T\d{6}\.\d+Z|\d{4}-\d\d-\d\d[T ][\d:.]+(\+00:00)?|_run_time_sort': [\d.]+"
            r"|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
        )  # a page's element ids are random
        return {
            re.sub(stamp, "T", str(p.relative_to(out))): re.sub(stamp, "T", p.read_text()) for p in out.rglob("*.html")
        }

    def site(k: int) -> dict:  # 0, 1: our views; 2, 3: GX's stock views (the default site, same folder setting)
        config = gx_docs.site(str(tmp_path / f"c{k}"))
        return config if k < 2 else {key: v for key, v in config.items() if not key.startswith("site_")}

    pages = [build(site(k), tmp_path / f"c{k}") for k in range(4)]
    assert len(gx_docs._CACHE._code) > 10  # the templates the pages needed, compiled once
    assert len(pages[0]) == 3 and "validations" in " ".join(pages[0])
    assert pages[0] == pages[1] == pages[2] == pages[3]
