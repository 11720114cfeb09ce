"""A whole ``ncf_tune`` run with ``dag.test()`` (real metadata DB, moto S3 server, real stages), then the
nightly DAG's build picking the profile up, with a trigger param winning over it."""

import datetime as dt

import pytest
from helpers import DAY, LOGICAL, get_dag, states

from ncf_tasks import layout
from ncf_tasks.generate import SyntheticSpec, run_generate
from ncf_tasks.ingest import run_ingest
from ncf_tasks.validate import run_validate

pytestmark = pytest.mark.slow


def test_tune_run_with_a_three_trial_budget_writes_a_profile_nightly_runs_use(dag_env, storage):
    run_generate(storage.settings, spec=SyntheticSpec(users=250, items=150, days=3, events_per_day=2500, end_date=DAY))
    for d in ("2026-11-24", "2026-11-25", DAY):
        run_ingest(storage.settings, date=d)
        run_validate(storage.settings, date=d, now=LOGICAL)
    conf = {"trials": 3, "time_budget_minutes": 5, "epochs": 2, "batch_size": 512}
    dr = get_dag("ncf_tune").test(logical_date=LOGICAL, run_conf=conf)
    assert dr.state == "success", states(dr)
    study = layout.safe_run_id(dr.run_id)
    folder = layout.tuning_study(study)
    for name in ("trials.json", "trials.parquet", "profile.json", "report.html"):
        assert storage.exists(folder + name), name
    assert len(storage.get_json(folder + "trials.json")) == 3
    # the test split was not touched: the study's run has no metrics, no evaluation
    assert not storage.exists(f"runs/{study}/metrics.json")

    # a profile (this study's if it beat trial 0; else one written as an operator would) reaches the nightly build
    if not storage.exists(layout.tuned_profile()):
        storage.put_json(
            layout.tuned_profile(), {**storage.get_json(folder + "profile.json"), "settings": {"factors": 16}}
        )
    prof = storage.get_json(layout.tuned_profile())
    later = LOGICAL + dt.timedelta(days=1)
    dr = get_dag("ncf_retrain").test(logical_date=later, run_conf={"data_date": DAY, "epochs": 1, "alpha": 0.25})
    assert states(dr)["build"] == "success", states(dr)
    manifest = storage.get_json(f"runs/{layout.safe_run_id(dr.run_id)}/manifest.json")
    assert manifest["profile"]["version"] == prof["version"]
    assert manifest["profile"]["applied"] == {k: v for k, v in prof["settings"].items() if k != "alpha"}
    assert storage.get_json(f"runs/{layout.safe_run_id(dr.run_id)}/config.json")["alpha"] == 0.25  # the param won
