"""
### ncf_ingest — ingest and validate days of logs, without retraining

For backfills: load a range of past days into the lake so that the next `ncf_retrain` trains on them.

    airflow backfill create --dag-id ncf_ingest --from-date 2026-11-01 --to-date 2026-11-07

Each run processes the day of its own logical date: the same task group and "which day" rule as
`ncf_retrain` (`ncf_common.ingest_and_validate`), with a lag of 0 (a backfill names the days it wants).
Idempotent: re-running a day replaces its lake partition and validates it again; nothing is duplicated.
Days without raw files are skipped; bad days are quarantined and fail, as in `ncf_retrain`.
The DAG is scheduled daily only so that backfills have dates to create; leave it paused.
"""

from __future__ import annotations

from airflow.sdk import dag
from ncf_common import DEFAULT_ARGS, START_DATE, failure_summary, ingest_and_validate


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
    on_failure_callback=failure_summary(lag_days=0),
)
def ncf_ingest():
    ingest_and_validate(lag_days=0)


ncf_ingest()
