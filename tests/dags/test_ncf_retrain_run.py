"""Whole-DAG runs with ``dag.test()``: real Airflow metadata DB, real S3 endpoint, real stages."""

import datetime as dt

import pytest
from helpers import DAY, LOGICAL, ROOT, get_dag, states

from ncf_tasks import layout
from ncf_tasks.generate import SyntheticSpec, run_generate

pytestmark = pytest.mark.slow


def test_day_without_logs_skips_the_run(dag_env, storage):
    dr = get_dag("ncf_retrain").test(logical_date=LOGICAL)
    assert states(dr)["ingest"] == "skipped" and storage.list_keys("lake/") == []
    assert dr.state == "success" and set(states(dr).values()) == {"skipped"}  # what the README says the UI shows


def test_bad_day_fails_validate_and_stops_the_run(dag_env, storage):

    storage.put_json("recs/topk/_latest.json", {"run_id": "previous"})
    bad = (ROOT / "tests" / "data" / "bad_batches" / "null_ids.jsonl").read_bytes()
    storage.put_bytes(layout.raw_partition(DAY) + "batch.jsonl", bad)
    dr = get_dag("ncf_retrain").test(logical_date=LOGICAL)
    st = states(dr)
    assert dr.state == "failed" and st["ingest"] == "success" and st["validate"] == "failed"
    mapped_ingest = ("ingest_files", "ingest_commit")  # skipped: a small day is ingested by `ingest`
    assert all(s == "skipped" for t, s in st.items() if t in mapped_ingest), st
    assert all(
        s in ("upstream_failed", None) for t, s in st.items() if t not in ("ingest", "validate", *mapped_ingest)
    ), st
    ti = next(ti for ti in dr.get_task_instances() if ti.task_id == "validate")
    assert ti.try_number == 1  # a validation failure is not retried
    assert storage.exists(layout.quarantine(DAY) + "part-0.parquet")
    assert storage.get_json("recs/topk/_latest.json") == {"run_id": "previous"}


def test_a_bad_item_catalogue_is_quarantined_and_stops_the_run_before_training(dag_env, storage, monkeypatch):
    monkeypatch.setenv("NCF_CATALOG_PREFIX", "catalog/items/")
    storage.put_json("recs/topk/_latest.json", {"run_id": "previous"})
    run_generate(storage.settings, spec=SyntheticSpec(users=200, items=100, days=1, events_per_day=1500, end_date=DAY))
    bad = (ROOT / "tests" / "data" / "bad_catalogs" / "stock_text.csv").read_bytes()
    storage.put_bytes(layout.catalog_partition("catalog/items/", DAY) + "items.csv", bad)
    dr = get_dag("ncf_retrain").test(logical_date=LOGICAL)
    st = states(dr)
    assert dr.state == "failed" and st["validate"] == "success" and st["validate_catalog"] == "failed", st
    assert st["build"] == "upstream_failed" and st["publish"] in ("upstream_failed", None), st
    ti = next(ti for ti in dr.get_task_instances() if ti.task_id == "validate_catalog")
    assert ti.try_number == 1  # a quarantined catalogue is not retried
    assert storage.exists(layout.catalog_quarantine(DAY) + "items.csv")
    assert "source_row': 3" in str(storage.get_json(layout.catalog_quarantine(DAY) + "validation_result.json"))
    assert storage.get_json("recs/topk/_latest.json") == {"run_id": "previous"}


def test_full_run_publishes_with_params_and_triggers_the_consumer(dag_env, storage):
    """Every task, the previous day ingested and validated, trigger-form params reflected in the table (K=7),
    the Asset event queues the consumer."""
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.asset import AssetDagRunQueue, AssetEvent, AssetModel
    from airflow.utils.session import create_session

    from ncf_tasks.ingest import run_ingest
    from ncf_tasks.validate import run_validate

    run_generate(storage.settings, spec=SyntheticSpec(users=300, items=150, days=3, events_per_day=3000, end_date=DAY))
    for d in ("2026-11-24", "2026-11-25"):  # history, as the backfill DAG would have loaded it
        run_ingest(storage.settings, date=d)
        run_validate(storage.settings, date=d, now=LOGICAL)
    from airflow.dag_processing.bundles.manager import DagBundlesManager

    DagBundlesManager().sync_bundles_to_db()
    bag = BundleDagBag(dag_folder=str(ROOT / "dags"), bundle_path=ROOT / "dags")
    sync_bag_to_db(bag, "dags-folder", None)  # the consumer must be known for the Asset to queue it
    from airflow.models.dag import DagModel

    with create_session() as session:  # new DAGs start paused; an operator unpauses the consumer
        session.query(DagModel).filter(DagModel.dag_id == "ncf_topk_consumer").update({"is_paused": False})
    conf = {"epochs": 2, "batch_size": 1024, "publish_k": 7, "gate_min_lift": -1.0, "publish_shards": 2}
    dr = bag.get_dag("ncf_retrain").test(logical_date=LOGICAL, run_conf=conf)
    st = states(dr)
    mapped_ingest = {"ingest_files", "ingest_commit"}  # a small day: ingested by `ingest` itself
    assert dr.state == "success" and {st[t] for t in mapped_ingest} == {"skipped"}, st
    assert {s for t, s in st.items() if t not in mapped_ingest} == {"success"}, st
    assert len(st) == 15  # the task ids, mapped ones once
    # the run of LOGICAL (02:00) ingested and validated the day before it
    assert storage.read_parquet(layout.lake_file(DAY)).height == 3000 and storage.exists(layout.validated_marker(DAY))
    from ncf_tasks.artifacts import RunArtifacts

    metrics = RunArtifacts(storage, dr.run_id).metrics()  # EASE^R fit in its own task, beside GMF and MLP
    assert metrics["ease"]["status"] == "trained" and "ease" in metrics["models"]
    assert metrics["gate"]["vs_baseline"] is not None
    assert "EASE^R HR@" in storage.get_bytes(layout.dashboard()).decode()
    shards = sorted(ti.map_index for ti in dr.get_task_instances() if ti.task_id == "score_shard")
    assert shards == [0, 1]  # the mapped score shards, one task instance each

    from ncf_tasks.reader import latest_pointer, load_latest

    pointer = latest_pointer(storage.settings)
    assert (
        pointer["k"] == 7 and pointer["partition"] == DAY and load_latest(storage.settings).collect()["rank"].max() == 7
    )
    assert len(pointer["files"]) == 2 and load_latest(storage.settings).collect().height == pointer["rows"]
    with create_session() as session:
        asset = session.query(AssetModel).filter(AssetModel.name == "ncf_topk").one()
        events = session.query(AssetEvent).filter(AssetEvent.asset_id == asset.id).all()
        assert events[-1].extra["run_id"] == pointer["run_id"] and events[-1].extra["k"] == 7
        queued = session.query(AssetDagRunQueue).filter(AssetDagRunQueue.asset_id == asset.id).all()
        assert "ncf_topk_consumer" in {q.target_dag_id for q in queued}
    consumer = bag.get_dag("ncf_topk_consumer").test()
    assert (
        consumer.state == "success" and states(consumer)["recommend_for_users"] == "success"
    )  # reads through recommend

    # a second run with the form's "warm start" ticked starts from the model this run published
    warm_conf = {**conf, "warm_start": True, "data_date": DAY, "publish_shards": 1, "gate_tolerance": 1.0}
    dr2 = bag.get_dag("ncf_retrain").test(logical_date=LOGICAL + dt.timedelta(hours=1), run_conf=warm_conf)
    assert dr2.state == "success", states(dr2)

    run2 = RunArtifacts(storage, dr2.run_id)
    assert run2.manifest().warm == {"from_run": pointer["run_id"], "since": "2026-11-20"}
    assert storage.get_json(run2.key(run2.history("neumf")))["init"]["warm"]["from_run"] == pointer["run_id"]
    assert latest_pointer(storage.settings)["files"] == [layout.topk_table(DAY, dr2.run_id)]


def test_backfill_of_three_days_ingests_each_once_and_reruns_add_nothing(dag_env, storage):
    run_generate(storage.settings, spec=SyntheticSpec(users=100, items=80, days=3, events_per_day=500, end_date=DAY))
    dag = get_dag("ncf_ingest")
    days = ["2026-11-24", "2026-11-25", "2026-11-26"]
    for d in days + days:  # the second pass is a rerun of the same backfill
        when = dt.datetime.fromisoformat(d).replace(tzinfo=dt.UTC)
        assert dag.test(logical_date=when).state == "success"
    for d in days:
        assert storage.read_parquet(layout.lake_file(d)).height == 500 and storage.exists(layout.validated_marker(d))
    assert storage.list_keys("lake/quarantine/") == []


def test_a_day_above_ingest_split_mb_is_ingested_by_mapped_tasks(dag_env, storage, monkeypatch):
    """ncf_ingest on a ~2.5 MB day with ingest_split_mb=1: file groups (mapped task instances), then the
    commit; validate reads the parts, which equal what the single task writes."""
    import math

    from ncf_tasks.ingest import run_ingest

    spec = SyntheticSpec(users=2000, items=500, days=1, events_per_day=40_000, end_date=DAY)
    run_generate(storage.settings, spec=spec, fmt="csv", files_per_day=3)
    raw = sum(o["size"] for o in storage.list(layout.raw_partition(DAY)))
    monkeypatch.setenv("NCF_INGEST_SPLIT_MB", "1")
    dr = get_dag("ncf_ingest").test(logical_date=dt.datetime.fromisoformat(DAY).replace(tzinfo=dt.UTC))
    tis = dr.get_task_instances()
    assert dr.state == "success" and {ti.state for ti in tis} == {"success"}, states(dr)
    n = min(math.ceil(raw / 1e6), 3)  # capped by the 3 files
    assert n >= 2 and sorted(ti.map_index for ti in tis if ti.task_id == "ingest_files") == list(range(n))
    keys = sorted(k for k in storage.list_keys(layout.lake_partition(DAY)) if layout.is_lake_part(k))
    assert keys == [layout.lake_part(DAY, r, n) for r in range(n)] and storage.exists(layout.validated_marker(DAY))
    mapped = storage.read_parquet(keys)
    run_ingest(storage.settings, date=DAY)
    assert storage.read_parquet(layout.lake_file(DAY)).equals(mapped)
