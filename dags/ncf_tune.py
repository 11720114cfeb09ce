"""
### ncf_tune — hyper-parameter search on validation, writes the tuned profile

Trigger by hand. `build` makes a training set from the validated lake up to the data day (the same rule
and settings as `ncf_retrain`), then `tune` runs an Optuna study (TPE sampler, median pruner on each
epoch's validation HR) over factors, learning rates, lazy L2, negatives per positive, α, dropout and the
recency boost — GMF, MLP and NeuMF trained per trial on the **validation split only**; the test split is
not read.

* `trials` and `time_budget_minutes` bound the study (pruning is what makes 40 trials fit 20 minutes on
  ML-100K with 2 cores). Trial 0 is today's settings: a profile is written only if a trial beats it.
* Results: `tuning/studies/<run>/report.html` (objective per trial, parameter importance, the trials),
  `trials.parquet`, `profile.json`; the winner becomes `tuning/profile.json`, which every later
  `ncf_retrain` run applies (recorded in its manifest) unless its trigger params set a value or
  `tuned profile` is off.
* A killed `tune` task resumes the study on retry from `tuning/studies/<run>/trials.json`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import Param, dag, get_current_context, task
from ncf_common import BASE, DEFAULT_ARGS, PARAMS, START_DATE, data_date, failure_summary, run_settings


@dag(
    dag_id="ncf_tune",
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "data_date": PARAMS["data_date"],
        "trials": Param(
            40,
            type="integer",
            minimum=1,
            maximum=1000,
            title="trials",
            description="trial budget of the study (trial 0 runs today's settings)",
        ),
        "time_budget_minutes": Param(
            20,
            type="number",
            minimum=1,
            maximum=24 * 60,
            title="time budget (minutes)",
            description="stop starting trials after this long (counted per try of `tune`)",
        ),
        **{name: PARAMS[name] for name in ("window_days", "epochs", "batch_size")},
    },
    tags=["ncf", "tuning", "ml"],
    description="Optuna study on the validation split; writes the tuned profile nightly runs pick up",
    doc_md=__doc__,
    on_failure_callback=failure_summary(),
)
def ncf_tune():
    @task(execution_timeout=dt.timedelta(hours=1))
    def build() -> dict:
        """Training set of the study, as ncf_retrain builds one (the profile is not applied: it is searched)."""
        from ncf_tasks.build import run_build

        ctx = get_current_context()
        settings = run_settings(ctx).replace(tuned_profile=False)
        return run_build(settings, run_id=ctx["run_id"], end_date=data_date(ctx, settings))

    @task(queue=BASE.train_queue, execution_timeout=dt.timedelta(hours=25), retries=1)
    def tune(built: dict) -> dict:
        from ncf_tasks.tune import run_tune

        ctx = get_current_context()
        params = ctx["params"]
        return run_tune(
            run_settings(ctx).replace(tuned_profile=False),
            run_id=built["run_id"],
            study=built["run_id"],
            trials=int(params["trials"]),
            timeout_s=float(params["time_budget_minutes"]) * 60,
        )

    tune(build())


ncf_tune()
