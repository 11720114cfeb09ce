"""Validate one curated day with Great Expectations; quarantine it and stop the run on failure.

The rules are data: ``include/expectations/interactions.json`` (a GX 1.x suite) whose thresholds are
``$PARAMETER`` references filled from the run's settings. GX validates pandas frames only, so the
partition is converted once (Arrow-backed, no per-value Python objects). Every validation, passed or
failed, publishes GX Data Docs to ``reports/validation/dt=D/``. Two hard rules run in polars beside the
suite (they are in the error and the validation result, not in the Data Docs): ``value_finite`` (NaN
and infinity pass GX's range checks) and ``id_chars`` (control, zero-width and bidirectional characters,
or whitespace at either end of an id: GX's regex check is Python's ``re`` row by row).

Fail closed: on any failed rule the batch and the validation result are copied to
``lake/quarantine/dt=D/``, the curated partition is removed (a later build cannot read it), and
``ValidationFailed`` lists each failed rule with its observed value and example rows. Raw logs are
never touched. Soft rules (``volume_band``, ``duplicate_rate``) may be waived for a run by an operator;
hard rules cannot. A passing validation writes ``_validated.json`` next to the partition; the builder
reads only partitions that carry it.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import mimetypes
import os
import re
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ncf_tasks import layout
from ncf_tasks.config import Settings
from ncf_tasks.errors import NoDataError, ValidationFailed, clip
from ncf_tasks.storage import Storage

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)
SUITE_PATH = Path(__file__).resolve().parents[1] / "include" / "expectations" / "interactions.json"


@dataclass
class Outcome:
    rule: str
    expectation: str
    column: str | None
    success: bool
    soft: bool
    observed: Any = None
    unexpected_count: int | None = None
    examples: list = field(default_factory=list)
    expected: str = ""
    error: str | None = None

    def describe(self) -> str:
        what = f"{self.expectation}({self.column})" if self.column else self.expectation
        parts = [f"rule {self.rule}: {what} failed" + (f" (expected {self.expected})" if self.expected else "")]
        if self.error:
            parts.append(f"error: {self.error}")
        if self.observed is not None:
            parts.append(f"observed {self.observed}")
        if self.unexpected_count:
            parts.append(f"{self.unexpected_count} bad row(s)")
        if self.examples:
            parts.append(f"example rows {self.examples}")
        return "; ".join(parts)


def load_suite(path: Path = SUITE_PATH) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValidationFailed(f"{path}: cannot load the expectation suite: {exc}") from exc


def days_before(day: str, now: dt.datetime) -> int:
    """How many days ``day`` lies before ``now``: beyond ``volume_recent_days`` the volume band does not apply."""
    return (now.date() - dt.date.fromisoformat(day)).days


def suite_parameters(settings: Settings, day: str, *, now: dt.datetime, manifest: dict | None,
                     history: list[int]) -> tuple[dict[str, Any], list[str]]:
    """Values for the suite's ``$PARAMETER``s; optional rules get None (dropped) with a note."""
    import pandas as pd

    start = dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc)
    tol = dt.timedelta(minutes=settings.ts_tolerance_minutes)
    notes = []
    params: dict[str, Any] = {
        "max_id_length": settings.max_id_length,
        "ts_min": pd.Timestamp(start - tol),
        "ts_max": pd.Timestamp(start + dt.timedelta(days=1) + tol),
        "now": pd.Timestamp(now),
        "value_min": settings.value_min, "value_max": settings.value_max,
        "allowed_event_types": list(settings.allowed_event_types) or None,
        "min_rows": settings.min_rows, "min_users": settings.min_users, "min_items": settings.min_items,
        "dedup_min_rows": None, "volume_min": None, "volume_max": None,
    }
    if manifest and manifest.get("rows_read"):
        # duplicate rate <= max  <=>  rows after de-duplication >= rows read * (1 - max)
        params["dedup_min_rows"] = math.ceil(manifest["rows_read"] * (1 - settings.max_duplicate_rate) - 1e-9)
    else:
        notes.append("duplicate_rate skipped: no ingest manifest with raw row counts")
    age = days_before(day, now)
    if age > settings.volume_recent_days:
        notes.append(f"volume_band skipped: {day} is {age} days before now, a backfill or historical load "
                     f"(the band guards the nightly feed: volume_recent_days={settings.volume_recent_days})")
    elif history:
        median = statistics.median(history)
        params["volume_min"] = math.floor(median / settings.volume_band)
        params["volume_max"] = math.ceil(median * settings.volume_band)
        notes.append(f"volume_band: median of {len(history)} earlier day(s) = {median:g} rows, "
                     f"accepted [{params['volume_min']}, {params['volume_max']}]")
    else:
        notes.append(f"volume_band skipped: no validated history in the {settings.volume_history_days} days before")
    return params, notes


def validate_frame(df: "pl.DataFrame", params: dict[str, Any], site_dir: Path) -> tuple[list[Outcome], dict]:
    """Run the suite on a frame; returns one Outcome per expectation and the GX result as JSON.

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

    suite = load_suite()
    kept = [e for e in suite["expectations"]
            if not (e.get("meta", {}).get("optional") and params.get(e["meta"]["optional"]) is None)]
    suite["expectations"] = kept
    gx_df, params = _shown_to_gx(df, params)
    frame = gx_df.to_pandas(use_pyarrow_extension_array=False)  # the one copy GX needs (pandas frames only)
    for c in frame.columns:  # GX's type check wants numpy/str dtypes; strings stay Arrow-backed 'str'
        if str(frame[c].dtype) == "object":
            frame[c] = frame[c].astype("str")

    from great_expectations.data_context.types.base import DataContextConfig, InMemoryStoreBackendDefaults

    from ncf_tasks import gx_docs

    ctx = gx.get_context(mode="ephemeral", project_config=DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        data_docs_sites={"local_site": gx_docs.site(str(site_dir))},
        progress_bars=ProgressBarsConfig(globally=False)))
    batch_def = ctx.data_sources.add_pandas("lake").add_dataframe_asset("interactions") \
        .add_batch_definition_whole_dataframe("day")
    gx_suite = ctx.suites.add(ExpectationSuite(**suite))
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name="day", data=batch_def, suite=gx_suite))
    checkpoint = ctx.checkpoints.add(gx.Checkpoint(
        name="interactions_day", validation_definitions=[vd], actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
        result_format={"result_format": "SUMMARY", "partial_unexpected_count": 5}))
    run = checkpoint.run(batch_parameters={"dataframe": frame}, expectation_parameters=params)
    (vr,) = run.run_results.values()
    outcomes = [_finite_values(df), *_id_characters(df)]
    for r in vr.results:
        cfg = r.expectation_config
        meta = cfg.meta or {}
        res = r.result or {}
        exc = r.exception_info or {}
        error = exc.get("exception_message") if exc.get("raised_exception") else None
        rows = (res.get("partial_unexpected_index_list") or [])[:3]
        examples = ([{"row": int(i) + 1, **{k: _jsonable(v) for k, v in df.row(int(i), named=True).items()}}
                     for i in rows] if rows else [_jsonable(v) for v in (res.get("partial_unexpected_list") or [])[:3]])
        outcomes.append(Outcome(
            rule=meta.get("rule", cfg.type), expectation=cfg.type, column=cfg.kwargs.get("column"),
            success=bool(r.success), soft=bool(meta.get("soft")), observed=_jsonable(res.get("observed_value")),
            unexpected_count=res.get("unexpected_count"), examples=examples, error=error,
            expected=_expected(cfg.kwargs, params),
        ))
    return outcomes, vr.to_json_dict()


# HTML-active characters and same-width look-alikes: GX's Data Docs render unexpected values unescaped
_LOOKALIKE = str.maketrans({"<": "‹", ">": "›", "&": "＆", '"': "＂", "'": "＇"})


def _shown_to_gx(df: "pl.DataFrame", params: dict[str, Any]) -> tuple["pl.DataFrame", dict[str, Any]]:
    """The frame and parameters GX validates and renders: text cut to ``max_id_length + 1`` characters
    (every length rule fails exactly as on the full value, but a 200 MB id is not copied into results,
    Data Docs and logs) and HTML-active characters replaced by look-alikes of the same length (GX's
    Data Docs do not escape values: an id '<script>…' would run in the reader's browser). Our own
    messages quote the original rows, bounded (``errors.quote``)."""
    import polars as pl

    keep = int(params["max_id_length"]) + 1
    src, dst = zip(*((chr(k), v) for k, v in _LOOKALIKE.items()))
    text = [c for c, t in df.schema.items() if t == pl.String]
    shown = df.with_columns(pl.col(c).str.slice(0, keep).str.replace_many(list(src), list(dst)) for c in text)
    allowed = params.get("allowed_event_types")
    if allowed:
        params = {**params, "allowed_event_types": [a.translate(_LOOKALIKE) for a in allowed]}
    return shown, params


def _finite_values(df: "pl.DataFrame") -> Outcome:
    """NaN in ``value`` passes every range check (NaN compares false) and pandas cannot tell it from a
    missing value, so this hard rule runs in polars: a present value must be a finite number."""
    import polars as pl

    col = df.get_column("value", default=None)  # missing: the schema rule's to report
    bad = ((col.is_nan() | col.is_infinite()).fill_null(False) if col is not None and col.dtype.is_float()
           else pl.Series([False] * df.height))
    return _polars_outcome(df, bad, "value_finite", "values_are_finite_numbers", "value", "not NaN, not infinite")


# C0 and C1 controls (NUL, tab, newline, ...), zero-width characters and marks, line and paragraph
# separators, bidirectional embeddings, overrides and isolates, word joiner, byte order mark; or
# whitespace at either end. Rust regex syntax (polars).
_BAD_ID_CHARS = (r"[\x{00}-\x{1f}\x{7f}-\x{9f}\x{200b}-\x{200f}\x{2028}-\x{202e}\x{2060}-\x{2069}\x{feff}]"
                 r"|^\s|\s$")


def _id_characters(df: "pl.DataFrame") -> list[Outcome]:
    r"""Ids that look equal but are not (' u1' and 'u1', 'u\u200b1' and 'u1', a right-to-left override) or
    break every line-based consumer (a newline, NUL or other control character) split one user or item
    into several and pass every other rule. A hard rule in polars: GX's regex expectation runs Python's
    ``re`` row by row, too slow for a 10M-row day. A column missing or not text is the schema rule's."""
    import polars as pl

    return [_polars_outcome(df, df.get_column(c).str.contains(_BAD_ID_CHARS).fill_null(False), "id_chars",
                            "values_have_no_invisible_characters", c,
                            "no control, zero-width or bidirectional characters, no whitespace at either end")
            for c in ("user_id", "item_id") if df.schema.get(c) == pl.String]


def _polars_outcome(df: "pl.DataFrame", bad: "pl.Series", rule: str, expectation: str, column: str,
                    expected: str) -> Outcome:
    """The Outcome of a hard rule checked in polars: ``bad`` marks the failing rows."""
    rows = bad.arg_true().head(3).to_list()
    return Outcome(rule=rule, expectation=expectation, column=column, success=not bad.any(), soft=False,
                   unexpected_count=int(bad.sum()), expected=expected,
                   examples=[{"row": i + 1, **{k: _jsonable(v) for k, v in df.row(i, named=True).items()}} for i in rows])


def _expected(kwargs: dict, params: dict[str, Any]) -> str:
    """The rule's thresholds as the run resolved them, e.g. 'min_value=1, max_value=128'."""
    shown = []
    for k, v in kwargs.items():
        if k in ("column", "batch_id"):
            continue
        if isinstance(v, dict) and "$PARAMETER" in v:
            v = params.get(v["$PARAMETER"])
        shown.append(f"{k}={_jsonable(v) if not isinstance(v, list) else v}")
    return ", ".join(shown)


def _jsonable(v: Any) -> Any:
    if isinstance(v, str):
        return clip(v)
    if v is None or isinstance(v, (bool, int)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)  # 'nan', 'inf': JSON has no literal for them
    return str(v)


_STATIC_REF = re.compile(r'((?:href|src)=")((?:\.\.?/)*)static/([^"]+)"')


def upload_data_docs(storage: Storage, site: Path, prefix: str) -> int:
    """Upload a GX Data Docs site: its pages under ``prefix``, the static assets they reference once,
    shared by every day (``layout.validation_static``), the rest of GX's ``static/`` (4 MB of fonts and
    animated GIFs per day, referenced by no page: styles and scripts come from CDNs) not at all.
    Returns the number of objects written."""
    shared = layout.validation_static()
    present = set(storage.list_keys(shared))
    written = 0
    for page in sorted(site.rglob("*.html")):
        rel = page.relative_to(site).as_posix()
        up = "../" * (rel.count("/") + 1)  # from the page to reports/validation/
        text = page.read_text()
        for asset in {m.group(3) for m in _STATIC_REF.finditer(text)}:
            key = shared + asset
            if key not in present and (site / "static" / asset).is_file():
                storage.put_bytes(key, (site / "static" / asset).read_bytes(),
                                  mimetypes.guess_type(asset)[0] or "application/octet-stream")
                present.add(key)
                written += 1
        text = _STATIC_REF.sub(lambda m: f'{m.group(1)}{up}{shared.rsplit("/", 2)[-2]}/{m.group(3)}"', text)
        storage.put_bytes(prefix + rel, text.encode(), "text/html")
        written += 1
    return written


def history_counts(storage: Storage, day: str, days: int) -> list[int]:
    """Row counts of validated partitions among the ``days`` days before ``day`` (from their markers)."""
    d = dt.date.fromisoformat(day)
    counts = []
    for k in range(1, days + 1):
        marker = storage.get_json(layout.validated_marker(d - dt.timedelta(days=k)), default=None)
        if marker and marker.get("rows") is not None:
            counts.append(int(marker["rows"]))
    return counts


def run_validate(settings: Settings, *, date: str, now: dt.datetime | None = None) -> dict:
    """Validate ``lake/interactions/dt=date/``; raise ValidationFailed after quarantining it."""
    t0 = time.perf_counter()
    day = layout.day(date)
    now = now or dt.datetime.now(dt.timezone.utc)
    storage = Storage(settings)
    files = [k for k in storage.list_keys(layout.lake_partition(day)) if layout.is_lake_part(k)]
    if not files:
        raise NoDataError(f"no curated partition {storage.uri(layout.lake_file(day))}: run ingest for {day} first")
    manifest = storage.get_json(layout.ingest_manifest(day), default=None)
    df = storage.read_parquet(files)  # one file, or the parts of a mapped ingest
    recent = days_before(day, now) <= settings.volume_recent_days  # else no history is read (a backfill's days)
    params, notes = suite_parameters(settings, day, now=now, manifest=manifest,
                                     history=history_counts(storage, day, settings.volume_history_days) if recent else [])
    with tempfile.TemporaryDirectory(prefix="gx-") as tmp:
        site = Path(tmp) / "site"
        outcomes, gx_result = validate_frame(df, params, site)
        report_prefix = layout.validation_report(day)
        storage.delete_prefix(report_prefix)
        upload_data_docs(storage, site, report_prefix)
    docs_uri = storage.uri(report_prefix + "index.html")
    log.info("validation Data Docs for %s: %s", day, docs_uri)

    failed = [o for o in outcomes if not o.success]
    waived = [o for o in failed if o.soft and o.rule in settings.waive_rules]
    blocking = [o for o in failed if o not in waived]
    for o in waived:
        log.warning("WAIVED by operator (waive_rules=%s): %s", list(settings.waive_rules), o.describe())
    summary = {
        "date": day, "rows": df.height, "expectations": len(outcomes), "failed": [o.describe() for o in blocking],
        "waived": [o.describe() for o in waived], "notes": notes, "docs_uri": docs_uri,
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if blocking:
        _quarantine(storage, day, {**summary, "gx_result": gx_result})
        msg = (f"validation of {storage.uri(files[0] if len(files) == 1 else layout.lake_partition(day))} failed {len(blocking)} of {len(outcomes)} "
               f"expectations; the batch is quarantined under {storage.uri(layout.quarantine(day))} and "
               f"removed from the lake (Data Docs: {docs_uri}):\n  - " + "\n  - ".join(summary["failed"]))
        log.error(msg)
        raise ValidationFailed(msg)

    storage.put_json(layout.validated_marker(day), {**summary, "status": "passed"})
    _resolve_quarantine(storage, day)
    log.info("validation of %s passed: %d rows, %d expectations, %d waived (%.1fs)", day, df.height,
             len(outcomes), len(waived), summary["seconds"])
    return {**summary, "status": "passed", "uri": storage.uri(files[0] if len(files) == 1 else layout.lake_partition(day))}


def _quarantine(storage: Storage, day: str, result: dict) -> None:
    """Copy first, then remove from the lake: the batch is never in neither place."""
    q = layout.quarantine(day)
    storage.delete_prefix(q)  # a newer rejection of the same date replaces the older one
    storage.copy_prefix(layout.lake_partition(day), q)
    storage.put_json(layout.quarantine_result(day), result)
    storage.put_json(layout.quarantine_status(day), {"state": "quarantined", "date": day, "failed": result["failed"]})
    storage.delete_prefix(layout.lake_partition(day))


def _resolve_quarantine(storage: Storage, day: str) -> None:
    """A fixed re-ingest passed: mark the old rejection resolved (kept for audit, not deleted)."""
    status_key = layout.quarantine_status(day)
    status = storage.get_json(status_key, default=None)
    if status and status.get("state") == "quarantined":
        storage.put_json(status_key, {**status, "state": "resolved",
                                      "resolved_by": storage.uri(layout.validated_marker(day))})
