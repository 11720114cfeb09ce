"""Whole-DAG runs with ``dag.test()``: real Airflow metadata DB, real S3 endpoint, real stages."""

import datetime as dt

import pytest

from conftest import ROOT
from ncf_tasks import layout
from ncf_tasks.generate import SyntheticSpec, run_generate

pytestmark = pytest.mark.slow
LOGICAL = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.timezone.utc)
DAY = "2026-11-26"  # logical date minus NCF_DATE_LAG_DAYS=1


@pytest.fixture
def dag_env(airflow_db, s3_env, monkeypatch):
    for k, v in s3_env.items():
        monkeypatch.setenv(k, v)
    return s3_env


def get_dag(dag_id):
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(ROOT / "dags"), bundle_path=ROOT / "dags")
    assert bag.import_errors == {}
    return bag.get_dag(dag_id)


def states(dag_run):
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def test_ingest_runs_for_the_previous_day(dag_env, storage):
    run_generate(storage.settings, spec=SyntheticSpec(users=200, items=100, days=2, events_per_day=1500, end_date=DAY))
    dr = get_dag("ncf_retrain").test(logical_date=LOGICAL)
    assert states(dr)["ingest"] == "success"
    assert storage.read_parquet(layout.lake_file(DAY)).height == 1500


def test_day_without_logs_skips_the_run(dag_env, storage):
    dr = get_dag("ncf_retrain").test(logical_date=LOGICAL)
    assert states(dr)["ingest"] == "skipped" and storage.list_keys("lake/") == []
