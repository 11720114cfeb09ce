import datetime as dt

import pytest

from ncf_tasks import layout
from ncf_tasks.build import run_build
from ncf_tasks.errors import NoDataError
from ncf_tasks.generate import SyntheticSpec, run_generate
from ncf_tasks.ingest import run_ingest
from ncf_tasks.validate import run_validate

NOW = dt.datetime(2026, 11, 27, 2, tzinfo=dt.UTC)


@pytest.fixture
def lake(storage):
    run_generate(
        storage.settings, spec=SyntheticSpec(users=150, items=120, days=3, events_per_day=1500, end_date="2026-11-26")
    )
    for d in ("2026-11-24", "2026-11-25", "2026-11-26"):
        run_ingest(storage.settings, date=d)
    for d in ("2026-11-24", "2026-11-25"):  # 2026-11-26 ingested, not validated
        run_validate(storage.settings, date=d, now=NOW)
    return storage


def test_build_reads_only_validated_partitions_and_writes_the_run(lake):
    r = run_build(lake.settings, run_id="manual__2026-11-27T02:00:00+00:00", end_date="2026-11-26")
    prefix = layout.run_prefix("manual__2026-11-27T02:00:00+00:00")
    assert prefix.startswith("runs/manual__2026-11-27T02_00_00_00_00-")  # readable, plus a hash: one-to-one
    manifest = lake.get_json(prefix + "manifest.json")
    assert [p["date"] for p in manifest["partitions"]] == ["2026-11-24", "2026-11-25"]
    assert manifest["skipped_unvalidated"] == ["2026-11-26"] and r["partitions"] == 2
    assert {f"{prefix}{n}.parquet" for n in ("users", "items", "train", "valid", "test")} <= set(lake.list_keys(prefix))
    assert manifest["n_users"] == lake.read_parquet(prefix + "users.parquet").height == r["users"]
    assert manifest["n_test"] == lake.read_parquet(prefix + "test.parquet").height
    assert lake.get_json(prefix + "config.json")["eval_negatives"] == 99


def test_window_and_idempotent_rebuild(lake):
    s = lake.settings.replace(window_days=1)
    a = run_build(s, run_id="r1", end_date="2026-11-25")
    before = {o["key"]: o["etag"] for o in lake.list("runs/r1/") if o["key"].endswith(".parquet")}
    b = run_build(s, run_id="r1", end_date="2026-11-25")
    after = {o["key"]: o["etag"] for o in lake.list("runs/r1/") if o["key"].endswith(".parquet")}
    assert a["partitions"] == 1 and before == after and a["train_positives"] == b["train_positives"]


def test_no_validated_data_is_a_clear_error(storage):
    with pytest.raises(NoDataError, match=r"no validated partitions under s3://.*/lake/interactions/ up to 2026-11-26"):
        run_build(storage.settings, run_id="r", end_date="2026-11-26")
