"""
### ncf_retrain — nightly NCF retraining

Turns the day's raw interaction logs into a fresh NeuMF model and a published top-K table:

`ingest` → `validate` → `validate_catalog` → `build` → (`pretrain_gmf` ∥ `pretrain_mlp` ∥ `fit_ease`) → `train_neumf` →
`evaluate` → `gate` → `shards` → `score_shard` (mapped over user ranges) → `publish` (commits the parts;
emits the `ncf_topk` Asset). `fit_ease` is EASE^R, the closed-form baseline NeuMF is measured against.

* Nightly at 02:00 UTC (`NCF_SCHEDULE`), processing the logs of the previous day (`NCF_DATE_LAG_DAYS`).
* Trigger it by hand with the form to retrain now with other hyper-parameters, waive a soft validation
  rule, or force-publish after a person read the report. Every field is a setting of `ncf_tasks.config`.
* With an item catalogue (`NCF_CATALOG_PREFIX`), `validate_catalog` judges the snapshot the table will use and the
  table and fallback show only items it marks available; a bad snapshot is quarantined and stops the run
  before training. Without one the task does nothing.
* A day without raw logs skips every task (the run itself shows success, all its tasks skipped); a bad day is quarantined and fails `validate`; a model the gate
  rejects skips `publish`. In every case the previous table and `_latest.json` stay as they were.
* What the runs did: the **runs dashboard** `reports/index.html` in the bucket (one row per run, quality over
  time; with `make up`: `.data/s3/ncf-demo/reports/index.html`), each run's `runs/<run_id>/report.html`, and
  the day's validation Data Docs `reports/validation/dt=<day>/index.html`.
"""

from __future__ import annotations

import datetime as dt

from airflow.sdk import dag, get_current_context, task
from ncf_common import (
    BASE,
    DEFAULT_ARGS,
    PARAMS,
    SCHEDULE,
    START_DATE,
    TOPK_ASSET,
    data_date,
    explicit_params,
    failure_summary,
    ingest_and_validate,
    notice_line,
    notify,
    run_settings,
)


@dag(
    dag_id="ncf_retrain",
    schedule=SCHEDULE,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    tags=["ncf", "recommendations", "ml"],
    description="Nightly NCF (GMF, MLP, NeuMF) retraining and top-K publication",
    doc_md=__doc__,
    on_failure_callback=failure_summary(),
)
def ncf_retrain():
    @task(execution_timeout=dt.timedelta(hours=1))
    def build(validated: dict) -> dict:
        """Training set of this run from every validated day in the window: id maps, leave-one-out
        split, 99 sampled candidates per held-out item, `runs/<run_id>/manifest.json`. Resolves the tuned
        profile (`tuning/profile.json`, from `ncf_tune`) once for the run and records it in the manifest."""
        from ncf_tasks.build import run_build

        ctx = get_current_context()
        return run_build(
            run_settings(ctx), run_id=ctx["run_id"], end_date=validated["date"], explicit=explicit_params(ctx)
        )

    def train_task(model: str, doc: str):
        @task(
            task_id={"neumf": "train_neumf", "ease": "fit_ease"}.get(model, f"pretrain_{model}"),
            queue=BASE.train_queue,
            execution_timeout=dt.timedelta(hours=2),
            doc_md=doc,
        )
        def _train(built: dict) -> dict:
            from ncf_tasks.train import run_train

            ctx = get_current_context()
            return run_train(run_settings(ctx), run_id=built["run_id"], model=model)

        return _train

    @task(execution_timeout=dt.timedelta(minutes=30))
    def validate_catalog(validated: dict) -> dict:
        """The item catalogue snapshot this day's table will use (`catalog_prefix`: the newest dated on or
        before the day, at most `catalog_max_age_days` old) against its Great Expectations suite; passed: the
        lake copy publish filters with; failed: quarantined under `lake/quarantine_catalog/dt=S/` and the run
        stops here, before training (nothing could be published). No catalogue configured: does nothing."""
        from ncf_tasks.validate_catalog import run_validate_catalog

        ctx = get_current_context()
        return run_validate_catalog(run_settings(ctx), date=validated["date"])

    validated = ingest_and_validate()
    built = build(validated)
    validate_catalog(validated) >> built
    gmf = train_task(
        "gmf",
        "GMF pretraining (Adam). Runs on the `gpu` queue (CPU when none); resumes from "
        "`runs/<run_id>/gmf_checkpoint.pt` after a killed try.",
    )(built)
    mlp = train_task("mlp", "MLP pretraining (Adam), in parallel with GMF.")(built)
    neumf = train_task(
        "neumf",
        "NeuMF fused from GMF and MLP (α-weighted output layer), fine-tuned; "
        "best epoch chosen on validation HR@10 only.",
    )(built)
    [gmf, mlp] >> neumf
    ease = train_task(
        "ease",
        "EASE^R (closed form): λ chosen on validation HR@10 from a log grid, refit on train + validation; "
        "the simple model NeuMF must beat. Skipped (with the reason in its log and the report) above "
        "`ease_max_items` items.",
    )(built)

    @task(queue=BASE.train_queue, execution_timeout=dt.timedelta(minutes=30))
    def evaluate(trained: dict) -> dict:
        """HR@K / NDCG@K of GMF, MLP, NeuMF, EASE^R, item popularity and the production model on the test
        candidates; full-catalogue recall, coverage, popularity bias; `runs/<run_id>/report.html`.
        The returned metrics are this task's XCom: visible in the UI without opening the log."""
        from ncf_tasks.evaluate import run_evaluate

        ctx = get_current_context()
        return run_evaluate(run_settings(ctx), run_id=trained["run_id"])

    @task.short_circuit(execution_timeout=dt.timedelta(minutes=5))
    def gate(evaluated: dict) -> bool:
        """The decision `evaluate` took (`ncf_tasks/gate.py`): publish only if the published model (NeuMF, or
        the best on validation with `publish_model=best`) beats popularity by `gate_min_lift` and is within
        `gate_tolerance` of production, or an operator set `force_publish`. A rejection skips `publish`; the
        previous table stays live. A notice (NeuMF trailing EASE^R) is logged as one `NCF NOTICE` line and sent
        to the notifier, published or not."""
        import logging

        decision = evaluated["gate"]
        log = logging.getLogger("ncf")
        (log.info if decision["publish"] else log.warning)(
            "gate %s %s: %s (report: %s)",
            "PUBLISH" if decision["publish"] else "REJECTED",
            decision.get("model", "neumf"),
            "; ".join(decision["reasons"]),
            evaluated["report_uri"],
        )
        if decision.get("notices"):
            ctx = get_current_context()
            notify(notice_line(ctx, decision["notices"]), ctx)
        return bool(decision["publish"])

    @task(execution_timeout=dt.timedelta(minutes=5))
    def shards(evaluated: dict) -> list[dict]:
        """The user ranges `score_shard` maps over: `publish_shards` of them (one by default)."""
        from ncf_tasks.publish import plan_shards

        return plan_shards(run_settings(get_current_context()), run_id=evaluated["run_id"])

    @task(
        queue=BASE.train_queue,
        execution_timeout=dt.timedelta(hours=1),
        map_index_template="{{ shard_label }}",
        doc_md="Scores one user range against the whole catalogue and writes its part of the table "
        "(`recs/topk/dt=D/topk-<run>-part-i-of-n.parquet`). Nothing points to it yet; a re-run rewrites "
        "the same bytes. Scores the model `evaluate` exported (`runs/<run>/neumf.npz`): numpy on a CPU "
        "worker (no torch import), torch on a GPU worker. Mapped (a mapped task keeps no docstring): the "
        "shards run side by side on the train queue's workers.",
    )
    def score_shard(part: dict) -> dict:
        from ncf_tasks.publish import score_shard as score

        ctx = get_current_context()
        ctx["shard_label"] = (
            f"shard {part['shard'] + 1}/{part['shards']}: users {part['users'][0]}..{part['users'][1] - 1}"
        )
        settings = run_settings(ctx)
        return score(
            settings, run_id=part["run_id"], date=data_date(ctx, settings), shard=part["shard"], shards=part["shards"]
        )

    @task(outlets=[TOPK_ASSET], execution_timeout=dt.timedelta(minutes=30))
    def publish(evaluated: dict, parts: list[dict]) -> dict:
        """Commits the shards' parts: `_latest.json` names every part (compare-and-swap, after all of them
        exist), then `models/production.json`. Emits the `ncf_topk` Asset with the pointer as event
        metadata. A failed shard never gets here: the previous table stays live. No scoring (no torch):
        it runs on the default queue and leaves the GPU worker's slots to training."""
        from ncf_tasks.publish import commit

        ctx = get_current_context()
        settings = run_settings(ctx)
        pointer = commit(settings, run_id=evaluated["run_id"], date=data_date(ctx, settings), parts=list(parts))
        ctx["outlet_events"][TOPK_ASSET].extra = {k: v for k, v in pointer.items() if k != "removed"}
        return pointer

    evaluated = evaluate(neumf)
    ease >> evaluated
    plan = shards(evaluated)
    gate(evaluated) >> plan
    publish(evaluated, score_shard.expand(part=plan))


ncf_retrain()
