"""
### ncf_ingest — ingest and validate days of logs, without retraining

For backfills: load a range of past days into the lake so that the next `ncf_retrain` trains on them.

    airflow backfill create --dag-id ncf_ingest --from-date 2026-11-01 --to-date 2026-11-07

Each run processes the day of its own logical date (no lag: a backfill names the days it wants).
Idempotent: re-running a day replaces its lake partition and validates it again; nothing is duplicated.
Days without raw files are skipped; bad days are quarantined and fail, as in `ncf_retrain`.
The DAG is scheduled daily only so that backfills have dates to create; leave it paused.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, get_current_context, task

from ncf_common import DEFAULT_ARGS, START_DATE, failure_summary, run_settings


@dag(
    dag_id="ncf_ingest",
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=4,
    default_args=DEFAULT_ARGS,
    tags=["ncf", "ingest", "backfill"],
    description="Ingest and validate one day of raw logs (for backfills)",
    doc_md=__doc__,
    on_failure_callback=failure_summary,
)
def ncf_ingest():
    @task(execution_timeout=dt.timedelta(minutes=30))
    def ingest_day() -> dict:
        """Raw files of the logical date → lake partition (replaced, never appended)."""
        from airflow.sdk.exceptions import AirflowSkipException

        from ncf_tasks.ingest import run_ingest

        ctx = get_current_context()
        day = (ctx.get("logical_date") or ctx["dag_run"].run_after).date().isoformat()
        result = run_ingest(run_settings(ctx), date=day)
        if result["status"] == "no_data":
            raise AirflowSkipException(f"no raw logs under {result['raw_uri']}")
        return result

    @task(execution_timeout=dt.timedelta(minutes=30))
    def validate_day(ingested: dict) -> dict:
        """Great Expectations on the day; quarantine and fail on a broken rule."""
        from ncf_tasks.validate import run_validate

        return run_validate(run_settings(get_current_context()), date=ingested["date"])

    validate_day(ingest_day())


ncf_ingest()
