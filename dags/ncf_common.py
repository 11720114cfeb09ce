"""Airflow-side glue shared by the NCF DAGs (not a DAG file itself: see .airflowignore).

Settings per run (environment + trigger-form params + an optional Airflow connection), the processed
date, the retry policy, the failure callback, the published Asset and the ingest → validate task
group that ``ncf_retrain`` and ``ncf_ingest`` share. Only ``ncf_tasks.config`` and ``ncf_tasks.layout``
are imported here: both are standard library only, so DAG parsing stays fast.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any

from airflow.sdk import Asset, Param, get_current_context, task, task_group
from airflow.sdk.definitions.retry_policy import ExceptionRetryPolicy, RetryAction, RetryRule

from ncf_tasks import layout
from ncf_tasks.config import Settings, env_name
from ncf_tasks.errors import RETRIED, clip

log = logging.getLogger("ncf")

# Parse time reads the environment only (no connections, no variables): a bad NCF_* value shows up as
# an import error naming the setting.
BASE = Settings.from_env()
# 'none' (or empty): no nightly runs, manual and API triggers only (a staging stack, tests/stack/)
SCHEDULE = None if BASE.schedule.strip().lower() in ("", "none") else BASE.schedule
START_DATE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

# The Asset's identity is logical: Airflow stores name and URI, and an Asset whose URI changed with the
# bucket or prefix (another deployment, or the demo and the tests sharing one metadata DB) would be
# inactive and fail publish. Where the table lies is in each event's metadata (the pointer: uri, files).
TOPK_ASSET = Asset(uri="ncf://recs/topk", name="ncf_topk", group="recommendations")

# Storage and network errors are worth retrying; bad data, bad params and rejected validation are not.
RETRY_POLICY = ExceptionRetryPolicy(
    rules=[
        RetryRule(
            exception=list(RETRIED),  # the catalogue's retryable classes (ncf_tasks/errors.py): StorageError
            action=RetryAction.RETRY,
            reason="object storage error: retrying with backoff",
        ),
        RetryRule(
            exception=["botocore.exceptions.BotoCoreError", "builtins.ConnectionError", "builtins.TimeoutError"],
            action=RetryAction.RETRY,
            reason="network error: retrying with backoff",
        ),
    ],
    default=RetryAction.FAIL,
)

DEFAULT_ARGS: dict[str, Any] = {
    "owner": "ml-platform",
    "retries": 3,
    "retry_delay": dt.timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": dt.timedelta(minutes=10),
    "retry_policy": RETRY_POLICY,
}


def failure_line(context: dict, lag_days: int | None = None) -> str:
    """One line a person can act on: which DAG and task, which run, the data day it processed (the
    ``data_date`` rule, not the run's own date), and why — the exception when the task body raised,
    else the reason Airflow gives (a timeout, a task killed outside its body)."""
    ti = context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    try:
        day = data_date(context, BASE, lag_days)
    except Exception:  # noqa: BLE001 - a bad param must not hide the failure being reported
        when = context.get("logical_date") or getattr(context.get("dag_run"), "run_after", None)
        day = f"{when:%Y-%m-%d}?" if when else "?"
    exc = context.get("exception")
    if exc is not None:
        first = (str(exc).splitlines() or [""])[0]
        why = f"{type(exc).__name__}: {clip(first, 300)}"
    elif getattr(ti, "queue", None) and not getattr(ti, "hostname", None):
        # failed without ever reaching a worker: the scheduler's task_queued_timeout (the GPU-outage policy)
        why = (
            f"never started: no worker of queue '{ti.queue}' took it within the scheduler's "
            f"task_queued_timeout (is the '{ti.queue}' worker up?)"
        )
    else:
        why = clip(str(context.get("reason") or "no exception reached the callback: see the task's log"), 300)
    return (
        f"NCF FAILED dag={dag_id} task={getattr(ti, 'task_id', '?')} run={context.get('run_id')} date={day} why={why}"
    )


def notice_line(context: dict, notices: list[str]) -> str:
    """One line for a run that went on but deserves a look (NeuMF trailing EASE^R): DAG, run, data day, why."""
    ti = context.get("task_instance")
    dag_id = getattr(ti, "dag_id", None) or getattr(context.get("dag"), "dag_id", "?")
    try:
        day = data_date(context, BASE)
    except Exception:  # noqa: BLE001 - a bad param must not hide the notice
        day = "?"
    return f"NCF NOTICE dag={dag_id} run={context.get('run_id')} date={day} why={clip('; '.join(notices), 400)}"


def notify(line: str, context: dict | None = None, level: int = logging.WARNING) -> None:
    """Log ``line`` and, with NCF_NOTIFIER set to a notifier class path (e.g.
    airflow.providers.slack.notifications.slack.SlackNotifier), forward it."""
    log.log(level, line)
    if BASE.notifier:
        from airflow.sdk.module_loading import import_string

        import_string(BASE.notifier)(text=line)(context if context is not None else get_current_context())


def failure_summary(lag_days: int | None = None):
    """The DAGs' on_failure_callback: ``notify`` of ``failure_line``."""

    def callback(context: dict) -> None:
        notify(failure_line(context, lag_days), context, logging.ERROR)

    return callback


# -- trigger-form params, generated from the settings so that names, bounds and docs agree ------------
FORM_SETTINGS = (
    "window_days",
    "factors",
    "mlp_layers",
    "train_negatives",
    "epochs",
    "batch_size",
    "lr",
    "neumf_lr",
    "neumf_optimizer",
    "pretrain",
    "refit",
    "warm_start",
    "alpha",
    "l2",
    "dropout",
    "neumf_dropout",
    "recency_boost",
    "tuned_profile",
    "publish_k",
    "publish_shards",
    "gate_min_lift",
    "gate_tolerance",
    "publish_model",
    "waive_rules",
    "force_publish",
)


def _param(name: str) -> Param:
    f = {f.name: f for f in dataclasses.fields(Settings)}[name]
    value = getattr(BASE, name)
    meta = f.metadata
    schema: dict[str, Any] = {}
    if isinstance(value, bool):
        schema["type"] = "boolean"
    elif isinstance(value, int):
        schema["type"] = "integer"
    elif isinstance(value, float):
        schema["type"] = "number"
    elif isinstance(value, tuple):
        item = {"type": "integer", "minimum": 1} if name == "mlp_layers" else {"type": "string"}
        if meta.get("choices"):
            item["enum"] = list(meta["choices"])
        schema.update(type="array", items=item, uniqueItems=name == "waive_rules")
        if name == "mlp_layers":
            schema["minItems"] = 1
        value = list(value)
    else:
        schema["type"] = "string"
    if meta.get("choices") and not isinstance(value, list):
        schema["enum"] = list(meta["choices"])
    if "min" in meta:
        schema["minimum"] = meta["min"]
    if "max" in meta:
        schema["maximum"] = meta["max"]
    return Param(
        value,
        description=f"{meta['doc']} (setting {name}, env {env_name(name)})",
        title=name.replace("_", " "),
        **schema,
    )


PARAMS: dict[str, Param] = {
    "data_date": Param(
        None,
        type=["null", "string"],
        format="date",
        title="data date",
        description="YYYY-MM-DD of the logs to ingest and validate; empty = logical date "
        f"minus {BASE.date_lag_days} day(s) ({env_name('date_lag_days')})",
    ),
    **{name: _param(name) for name in FORM_SETTINGS},
}


def run_settings(context: dict) -> Settings:
    """Settings of this run: environment, then the run's params, then the Airflow connection if any.

    A bad param fails here, in the first task that reads it, with the param's name in the message.
    """
    params = context.get("params") or {}
    overrides = {k: v for k, v in params.items() if k in FORM_SETTINGS}
    settings = Settings.from_env(**overrides)
    return with_connection(settings) if settings.aws_conn_id else settings


def with_connection(settings: Settings) -> Settings:
    """``settings`` with the storage credentials, region and endpoint of the Airflow connection
    ``aws_conn_id``, resolved by the Amazon provider's AWS hook as every AWS operator resolves them: keys and
    session token, a role to assume (``role_arn`` in the extra), a profile, the region and ``endpoint_url``.

    The credentials are frozen once per task: temporary ones (an assumed role) last as long as their session
    (an hour by default); a task that outlives them fails with a storage error, and its retry resolves anew.
    """
    from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

    hook = AwsBaseHook(aws_conn_id=settings.aws_conn_id, client_type="s3")
    creds = hook.get_credentials()
    return settings.replace(
        s3_access_key_id=creds.access_key or "",
        s3_secret_access_key=creds.secret_key or "",
        s3_session_token=creds.token or "",
        s3_endpoint_url=hook.conn_config.endpoint_url or settings.s3_endpoint_url,
        s3_region=hook.conn_region_name or settings.s3_region,
    )


def explicit_params(context: dict) -> list[str]:
    """Settings the trigger form set to something other than the deployment's value: these win over the
    tuned profile (a form always sends every field, so a value equal to the deployment's counts as unset;
    switch ``tuned_profile`` off to run on the deployment's values)."""
    params = context.get("params") or {}
    same = lambda name, v: (
        (list(v) if isinstance(v, (list, tuple)) else v)
        == (  # noqa: E731
            list(getattr(BASE, name)) if isinstance(getattr(BASE, name), tuple) else getattr(BASE, name)
        )
    )
    return sorted(k for k, v in params.items() if k in FORM_SETTINGS and not same(k, v))


def data_date(context: dict, settings: Settings, lag_days: int | None = None) -> str:
    """The day of logs a run processes: the ``data_date`` param, else logical date minus the lag
    (``lag_days``, default the ``date_lag_days`` setting; ``ncf_ingest`` uses 0: a backfill names its days).

    Keyed on the logical date, not the data interval: a cron run's interval has zero length.
    Manual runs without a logical date use their ``run_after``.
    """
    explicit = (context.get("params") or {}).get("data_date")
    if explicit:
        return layout.day(explicit)
    when = context.get("logical_date") or context["dag_run"].run_after
    lag = settings.date_lag_days if lag_days is None else lag_days
    return (when - dt.timedelta(days=lag)).date().isoformat()


def ingest_and_validate(lag_days: int | None = None):
    """The task group both DAGs start with: ``ingest`` → ``validate`` of one day (task ids unprefixed).

    No raw files: ``ingest`` skips, and so does everything downstream. A day whose raw files exceed
    ``ingest_split_mb`` is ingested by mapped tasks instead of ``ingest`` itself: ``ingest_files`` over
    groups of files, then ``ingest_commit`` (``ncf_tasks.ingest_mapped``); for a small day both are
    skipped. A broken rule quarantines the batch and fails ``validate`` at once (ValidationFailed is not
    retried; storage errors are).
    Returns the ``validate`` result (its ``date`` is the day that was processed).
    """

    @task_group(
        group_id="ingest_validate",
        prefix_group_id=False,
        tooltip="raw logs of one day → lake partition → Great Expectations",
    )
    def group():
        @task(execution_timeout=dt.timedelta(minutes=30))
        def ingest() -> list[dict]:
            """Raw files of the processed day → `lake/interactions/dt=D/` (typed, de-duplicated, replaced
            on rerun), in this task (returns []); or, for a day above `ingest_split_mb`, the list the mapped
            tasks run (item i: file group i). No raw files: the task and the run are skipped (not
            failed, not 'successful')."""
            from airflow.sdk.exceptions import AirflowSkipException

            from ncf_tasks.ingest import run_ingest
            from ncf_tasks.ingest_mapped import plan_ingest

            ctx = get_current_context()
            settings = run_settings(ctx)
            day = data_date(ctx, settings, lag_days)
            plan = plan_ingest(settings, date=day)
            if plan["status"] == "no_data":
                raise AirflowSkipException(f"no raw logs under {plan['raw_uri']}: nothing to process")
            if plan["status"] == "single":
                log.info("ingest: %s", run_ingest(settings, date=day))
            return plan["tasks"]

        @task(
            execution_timeout=dt.timedelta(hours=1),
            map_index_template="{{ label }}",
            doc_md="A big day's group of raw files: read, sorted, de-duplicated, written as one part of the partition.",
        )
        def ingest_files(part: dict) -> dict:
            from ncf_tasks.ingest_mapped import ingest_group

            ctx = get_current_context()
            ctx["label"] = f"file group {part['index'] + 1}/{part['n']}: {len(part['keys'])} file(s)"
            return ingest_group(
                run_settings(ctx), date=part["date"], group=part["index"], groups=part["n"], keys=part["keys"]
            )

        @task(execution_timeout=dt.timedelta(hours=1))  # rewrites parts when files overlap in time
        def ingest_commit(parts: list[dict]) -> dict:
            """A big day's parts checked complete, rows that two parts share (re-sends across file groups)
            kept in the first part only, the partition's other files removed, the ingest manifest written."""
            from ncf_tasks.ingest_mapped import commit_ingest

            parts = list(parts)
            return commit_ingest(run_settings(get_current_context()), date=parts[0]["date"], parts=parts)

        # runs after `ingest` alone (small day: the mapped tasks are skipped) or after `ingest_commit`
        @task(execution_timeout=dt.timedelta(minutes=30), trigger_rule="none_failed_min_one_success")
        def validate() -> dict:
            """Great Expectations on the curated day. A failed rule quarantines the batch under
            `lake/quarantine/dt=D/` and fails this task at once. Data Docs for every validation:
            `reports/validation/dt=D/index.html`."""
            from ncf_tasks.validate import run_validate

            ctx = get_current_context()
            settings = run_settings(ctx)
            return run_validate(settings, date=data_date(ctx, settings, lag_days))

        planned = ingest()
        validated = validate()
        [planned, ingest_commit(ingest_files.expand(part=planned))] >> validated
        return validated

    return group()
