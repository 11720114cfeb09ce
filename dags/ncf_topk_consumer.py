"""
### ncf_topk_consumer — example downstream job

Scheduled on the `ncf_topk` Asset: runs whenever `ncf_retrain` publishes a new top-K table. It reads
the table through `ncf_tasks.reader` (which follows `recs/topk/_latest.json`) and checks it: the row
count matches the pointer, every user has at most K ranks numbered 1..n, and no recommended item is
one the user already interacted with. Then it does what an e-mail or home-page job does: asks
`ncf_tasks.reader.recommend` for the lists of some users, known and unknown alike (an unknown user gets
the published fallback list, marked `source = 'fallback'`). Copy it as the start of your own consumer.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, get_current_context, task
from ncf_common import DEFAULT_ARGS, START_DATE, TOPK_ASSET, failure_summary, run_settings


@dag(
    dag_id="ncf_topk_consumer",
    schedule=[TOPK_ASSET],
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    tags=["ncf", "recommendations", "example"],
    description="Example consumer of the published top-K table",
    doc_md=__doc__,
    on_failure_callback=failure_summary(),
)
def ncf_topk_consumer():
    @task(execution_timeout=dt.timedelta(minutes=30))
    def check_latest_table() -> dict:
        """Read the newest table through the pointer and check it (rows, K per user, no seen items)."""
        from ncf_tasks.reader import check_latest

        ctx = get_current_context()
        events = ctx.get("triggering_asset_events") or {}
        for asset, evs in events.items():
            for ev in evs:
                print(f"triggered by {asset}: run {ev.extra.get('run_id')} partition {ev.extra.get('partition')}")
        return check_latest(run_settings(ctx))

    @task(execution_timeout=dt.timedelta(minutes=30))
    def recommend_for_users(checked: dict) -> dict:
        """Lists for a few of the table's users and one it has never seen, through `reader.recommend`."""
        import polars as pl

        from ncf_tasks.reader import load_latest, recommend

        settings = run_settings(get_current_context())
        known = load_latest(settings).select("user_id").unique().sort("user_id").head(3).collect()["user_id"]
        recs = recommend([*known, "a-user-who-signed-up-today"], settings=settings)  # k: the table's K
        by_source = recs.group_by("source").agg(pl.col("user_id").n_unique().alias("users"))
        print(recs.head(40))
        return {"rows": recs.height, "users_by_source": dict(by_source.rows()), "run_id": checked["run_id"]}

    recommend_for_users(check_latest_table())


ncf_topk_consumer()
