"""Every DAG file loads with no import errors, quickly, without heavy imports or lookups at parse time."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

DAG_FILES = sorted(p.name for p in (ROOT / "dags").glob("*.py") if p.name != "ncf_common.py")

PARSE = r"""
import json, sys, time
from airflow.dag_processing.dagbag import BundleDagBag
HEAVY = ("torch", "polars", "great_expectations", "pandas", "pyarrow", "numpy")
out = {}
for path in sys.argv[2:]:
    before = {m for m in HEAVY if m in sys.modules}
    t = time.perf_counter()
    bag = BundleDagBag(dag_folder=path, bundle_path=sys.argv[1])
    # (boto3 is not on the list: Airflow's amazon provider imports it to normalise the s3:// Asset URI)
    out[path] = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": sorted(bag.dag_ids),
                 "seconds": round(time.perf_counter() - t, 3),
                 "heavy": sorted(m for m in HEAVY if m in sys.modules and m not in before)}
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def parsed() -> dict[str, dict]:
    """Each DAG file parsed in turn in one fresh interpreter (one Airflow import for all of them), so
    sys.modules shows what each parse added. No database and no connection is reachable here: a lookup at
    parse time would fail the parse."""
    env = {**os.environ, "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:////nonexistent/x.db"}
    paths = [str(ROOT / "dags" / f) for f in DAG_FILES]
    r = subprocess.run(
        [sys.executable, "-c", PARSE, str(ROOT / "dags"), *paths],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    return {Path(p).name: v for p, v in out.items()}


@pytest.mark.parametrize("dag_file", DAG_FILES)
def test_dag_file_parses_cleanly(dag_file, parsed, artifacts):
    out = parsed[dag_file]
    assert out["errors"] == {} and out["dags"], out
    assert out["heavy"] == [], f"{dag_file} imports {out['heavy']} at parse time"
    (artifacts / f"parse-{Path(dag_file).stem}.json").write_text(json.dumps(out))
    print(f"{dag_file}: {out['dags']} parsed in {out['seconds']}s")


def test_retrain_dag_shape(airflow_db):
    from airflow.dag_processing.dagbag import BundleDagBag

    dag = BundleDagBag(dag_folder=str(ROOT / "dags" / "ncf_retrain.py"), bundle_path=ROOT / "dags").get_dag(
        "ncf_retrain"
    )
    assert dag.max_active_runs == 1 and dag.catchup is False and "ncf" in dag.tags
    assert dag.owner == "ml-platform" and dag.description and dag.doc_md
    assert dag.timetable.expression == "0 2 * * *"
    for t in dag.tasks:
        assert t.execution_timeout is not None and t.doc_md, t.task_id
        assert t.retries == 3 and t.retry_exponential_backoff, t.task_id
    queues = {t.task_id: t.queue for t in dag.tasks}
    for tid in ("pretrain_gmf", "pretrain_mlp", "fit_ease", "train_neumf", "evaluate", "score_shard"):
        assert queues[tid] == "gpu", tid
    for tid in ("ingest", "ingest_files", "shards", "publish"):  # no torch: the cpu workers
        assert queues[tid] == "default", tid
    # only storage / network errors retry; a validation failure or bad data fails at once
    from ncf_tasks.errors import DataError, StorageError, ValidationFailed

    policy = dag.get_task("validate").retry_policy
    assert policy.evaluate(StorageError("x"), 1, 4).action.value == "retry"
    assert policy.evaluate(ValidationFailed("x"), 1, 4).action.value == "fail"
    assert policy.evaluate(DataError("x"), 1, 4).action.value == "fail"


def test_trigger_form_params_are_typed_and_bounded(airflow_db):
    from airflow.dag_processing.dagbag import BundleDagBag

    dag = BundleDagBag(dag_folder=str(ROOT / "dags" / "ncf_retrain.py"), bundle_path=ROOT / "dags").get_dag(
        "ncf_retrain"
    )
    params = dag.params
    schema = {k: params.get_param(k).schema for k in params}
    assert schema["epochs"]["type"] == "integer" and schema["epochs"]["minimum"] == 1
    assert schema["neumf_optimizer"]["enum"] == ["sgd", "adam"]
    assert schema["waive_rules"]["items"]["enum"] == ["volume_band", "duplicate_rate", "max_user_share"]
    assert schema["publish_model"]["enum"] == ["neumf", "best"]
    assert schema["mlp_layers"]["type"] == "array" and schema["alpha"]["maximum"] == 1.0
    assert all(p.description for p in (params.get_param(k) for k in params))
    params.validate()  # the defaults (the nightly settings) are valid
    from airflow.sdk.definitions.param import ParamsDict
    from airflow.sdk.exceptions import ParamValidationError

    bad = ParamsDict({k: params.get_param(k) for k in params})
    with pytest.raises(ParamValidationError, match="publish_k: 0 is less than the minimum of 1"):
        bad["publish_k"] = 0
    with pytest.raises(ParamValidationError, match="neumf_optimizer"):
        bad["neumf_optimizer"] = "rmsprop"


IDENTITY = r"""
import json, sys
from airflow.dag_processing.dagbag import BundleDagBag
bag = BundleDagBag(dag_folder=sys.argv[1], bundle_path=sys.argv[1])
retrain, ingest = bag.dags["ncf_retrain"], bag.dags["ncf_ingest"]  # no DB: get_dag would query it
print(json.dumps({"errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "assets": [[a.name, a.uri] for a in retrain.get_task("publish").outlets],
                  "schedule": getattr(retrain.timetable, "expression", None),
                  "ingest_tasks": sorted(t.task_id for t in ingest.tasks),
                  "groups": sorted({t.task_group.group_id for d in (retrain, ingest) for t in d.tasks
                                    if t.task_id in ("ingest", "validate")})}))
"""


def _identity(**env_over: str) -> dict:
    env = {
        **os.environ,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "sqlite:////nonexistent/x.db",
        **env_over,
    }
    r = subprocess.run(
        [sys.executable, "-c", IDENTITY, str(ROOT / "dags")], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["errors"] == {}, out["errors"]
    return out


def test_identities_do_not_depend_on_deployment_settings():
    """Airflow stores Asset names/URIs and task ids: another bucket or prefix must not change them (an
    Asset whose URI changed is inactive and fails publish). NCF_SCHEDULE and NCF_NOTIFIER are settings."""
    a = _identity()
    b = _identity(
        NCF_BUCKET="another-bucket",
        NCF_PREFIX="team-b/",
        NCF_SCHEDULE="30 3 * * *",
        NCF_NOTIFIER="airflow.providers.standard.notifications.smtp.SmtpNotifier",
    )
    assert a["assets"] == b["assets"] == [["ncf_topk", "ncf://recs/topk"]]
    assert (a["schedule"], b["schedule"]) == ("0 2 * * *", "30 3 * * *")
    assert _identity(NCF_SCHEDULE="none")["schedule"] is None  # manual and API triggers only
    # both DAGs start with the one shared ingest -> validate group, with unprefixed task ids
    assert a["ingest_tasks"] == ["ingest", "ingest_commit", "ingest_files", "validate"]
    assert a["groups"] == ["ingest_validate"]


def test_failure_line_names_the_data_day_and_a_reason_without_an_exception():
    import datetime as dt
    from types import SimpleNamespace

    from ncf_common import failure_line  # dags/ is on sys.path (conftest)

    ti = SimpleNamespace(dag_id="ncf_retrain", task_id="publish")
    ctx = {
        "task_instance": ti,
        "run_id": "scheduled__2026-11-27T02:00:00+00:00",
        "params": {},
        "logical_date": dt.datetime(2026, 11, 27, 2, tzinfo=dt.UTC),
    }
    assert failure_line(ctx).endswith("date=2026-11-26 why=no exception reached the callback: see the task's log")
    assert "date=2026-11-27 why=task_failure" in failure_line({**ctx, "reason": "task_failure"}, lag_days=0)
    # a task the scheduler failed because no worker of its queue took it (a GPU worker away too long)
    queued = SimpleNamespace(dag_id="ncf_retrain", task_id="pretrain_gmf", queue="gpu", hostname=None)
    assert failure_line({**ctx, "task_instance": queued, "reason": "task_failure"}).endswith(
        "why=never started: no worker of queue 'gpu' took it within the scheduler's task_queued_timeout "
        "(is the 'gpu' worker up?)"
    )
    line = failure_line({**ctx, "exception": ValueError("bad\nsecond line"), "params": {"data_date": "2026-11-20"}})
    assert line == (
        "NCF FAILED dag=ncf_retrain task=publish run=scheduled__2026-11-27T02:00:00+00:00 "
        "date=2026-11-20 why=ValueError: bad"
    )
