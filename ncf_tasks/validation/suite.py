"""The Great Expectations suite of a curated day: its file, its ``$PARAMETER``s from the run's settings, and
the GX run (an ephemeral context; the Data Docs site built into a local folder)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncf_tasks.config import Settings
from ncf_tasks.errors import ConfigError
from ncf_tasks.validation.outcome import Outcome, bounded, jsonable
from ncf_tasks.validation.rules import finite_values, id_characters, user_share

if TYPE_CHECKING:
    import polars as pl


POLARS_PARAMS = ("max_user_share",)  # parameters of the rules checked in polars (rules.py), not by GX
SUITES = Path(__file__).resolve().parents[2] / "include" / "expectations"
SUITE_PATH = SUITES / "interactions.json"


def load_suite(path: Path | None = None) -> dict:
    """A suite file (``SUITE_PATH`` unless given), read at each validation: a missing or broken file is the
    deployment's configuration error (exit 2), never a verdict on the data."""
    path = path or SUITE_PATH
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(
            f"{path}: cannot load the expectation suite (the rules file of validation; check the deployment's "
            f"include/ folder): {exc}"
        ) from exc


def days_before(day: str, now: dt.datetime) -> int:
    """How many days ``day`` lies before ``now``: beyond ``volume_recent_days`` the volume band does not apply."""
    return (now.date() - dt.date.fromisoformat(day)).days


def suite_parameters(
    settings: Settings, day: str, *, now: dt.datetime, manifest: dict | None, history: list[int]
) -> tuple[dict[str, Any], list[str]]:
    """Values for the suite's ``$PARAMETER``s; optional rules get None (dropped) with a note."""
    import pandas as pd

    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC)
    tol = dt.timedelta(minutes=settings.ts_tolerance_minutes)
    notes = []
    params: dict[str, Any] = {
        "max_id_length": settings.max_id_length,
        "ts_min": pd.Timestamp(start - tol),
        "ts_max": pd.Timestamp(start + dt.timedelta(days=1) + tol),
        "now": pd.Timestamp(now),
        "value_min": settings.value_min,
        "value_max": settings.value_max,
        "allowed_event_types": list(settings.allowed_event_types) or None,
        "min_rows": settings.min_rows,
        "min_users": settings.min_users,
        "min_items": settings.min_items,
        "dedup_min_rows": None,
        "volume_min": None,
        "volume_max": None,
        "max_user_share": settings.max_user_share,
    }
    if manifest and manifest.get("rows_read"):
        # duplicate rate <= max  <=>  rows after de-duplication >= rows read * (1 - max)
        params["dedup_min_rows"] = math.ceil(manifest["rows_read"] * (1 - settings.max_duplicate_rate) - 1e-9)
    else:
        notes.append("duplicate_rate skipped: no ingest manifest with raw row counts")
    age = days_before(day, now)
    if age > settings.volume_recent_days:
        params["max_user_share"] = None
        notes.append(
            f"volume_band and max_user_share skipped: {day} is {age} days before now, a backfill or historical "
            f"load (they guard the nightly feed: volume_recent_days={settings.volume_recent_days})"
        )
    elif history:
        median = statistics.median(history)
        params["volume_min"] = math.floor(median / settings.volume_band)
        params["volume_max"] = math.ceil(median * settings.volume_band)
        notes.append(
            f"volume_band: median of {len(history)} earlier day(s) = {median:g} rows, "
            f"accepted [{params['volume_min']}, {params['volume_max']}]"
        )
    else:
        notes.append(f"volume_band skipped: no validated history in the {settings.volume_history_days} days before")
    return params, notes


def validate_frame(df: "pl.DataFrame", params: dict[str, Any], site_dir: Path) -> tuple[list[Outcome], dict]:
    """Run the interactions suite and the polars rules on a day; one Outcome per rule and the GX result as JSON."""
    gx_params = {k: v for k, v in params.items() if k not in POLARS_PARAMS}
    outcomes, result = run_suite(df, load_suite(), gx_params, site_dir, "interactions")
    polars = [finite_values(df), *id_characters(df), *user_share(df, params.get("max_user_share"))]
    return [*polars, *outcomes], result


def run_suite(
    df: "pl.DataFrame", suite: dict, params: dict[str, Any], site_dir: Path, asset: str
) -> tuple[list[Outcome], dict]:
    """Run a suite (a parsed suite file) on a frame; returns one Outcome per expectation and the GX result.

    ``site_dir``: a folder (the caller's, usually temporary) where the Data Docs site is built (GX 1.x has
    no S3 store: the site is built locally, then uploaded). The context is ephemeral: a file-backed one
    re-parsed its YAML configuration ~70 times per validation (0.3 s of a small day's 0.8 s).
    """
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no phoning home from a worker
    # GX logs ~200 INFO lines per validation ("Skipping registering function ..."): noise for an operator
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    import great_expectations as gx
    from great_expectations.core.expectation_suite import ExpectationSuite
    from great_expectations.data_context.types.base import ProgressBarsConfig

    suite = {
        **suite,
        "expectations": [
            e
            for e in suite["expectations"]
            if not (e.get("meta", {}).get("optional") and params.get(e["meta"]["optional"]) is None)
        ],
    }
    # the values as the lake holds them: a rule judges exactly what build will read (Data Docs render them
    # escaped and bounded: gx_views; the result kept in quarantine is bounded: outcome.bounded)
    frame = df.to_pandas(use_pyarrow_extension_array=False)  # the one copy GX needs (pandas frames only)
    for c in frame.columns:  # GX's type check wants numpy/str dtypes; strings stay Arrow-backed 'str'
        if str(frame[c].dtype) == "object":
            frame[c] = frame[c].astype("str")

    from great_expectations.data_context.types.base import DataContextConfig, InMemoryStoreBackendDefaults

    from ncf_tasks.validation import gx_views

    ctx = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            data_docs_sites={"local_site": gx_views.site(str(site_dir))},
            progress_bars=ProgressBarsConfig(globally=False),
        ),
    )
    batch_def = (
        ctx.data_sources.add_pandas("lake").add_dataframe_asset(asset).add_batch_definition_whole_dataframe("day")
    )
    gx_suite = ctx.suites.add(ExpectationSuite(**suite))
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name="day", data=batch_def, suite=gx_suite))
    checkpoint = ctx.checkpoints.add(
        gx.Checkpoint(
            name=f"{asset}_day",
            validation_definitions=[vd],
            actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
            result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5},
        )
    )
    run = checkpoint.run(batch_parameters={"dataframe": frame}, expectation_parameters=params)
    (vr,) = run.run_results.values()
    outcomes = []
    for r in vr.results:
        cfg = r.expectation_config
        meta = cfg.meta or {}
        res = r.result or {}
        exc = r.exception_info or {}
        error = exc.get("exception_message") if exc.get("raised_exception") else None
        rows = (res.get("partial_unexpected_index_list") or [])[:3]
        examples = (
            [{"row": int(i) + 1, **{k: jsonable(v) for k, v in df.row(int(i), named=True).items()}} for i in rows]
            if rows
            else [jsonable(v) for v in (res.get("partial_unexpected_list") or [])[:3]]
        )
        outcomes.append(
            Outcome(
                rule=meta.get("rule", cfg.type),
                expectation=cfg.type,
                column=cfg.kwargs.get("column"),
                success=bool(r.success),
                soft=bool(meta.get("soft")),
                observed=jsonable(res.get("observed_value")),
                unexpected_count=res.get("unexpected_count"),
                examples=examples,
                error=error,
                expected=_expected(cfg.kwargs, params),
            )
        )
    return outcomes, bounded(vr.to_json_dict())


def _expected(kwargs: dict, params: dict[str, Any]) -> str:
    """The rule's thresholds as the run resolved them, e.g. 'min_value=1, max_value=128'."""
    shown = []
    for k, v in kwargs.items():
        if k in ("column", "batch_id"):
            continue
        if isinstance(v, dict) and "$PARAMETER" in v:
            v = params.get(v["$PARAMETER"])
        shown.append(f"{k}={jsonable(v) if not isinstance(v, list) else v}")
    return ", ".join(shown)
