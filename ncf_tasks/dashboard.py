"""The runs dashboard, ``reports/index.html``: one row per run and plots over time, rebuilt by every run.

Rebuilt at the end of ``evaluate`` and of ``publish`` from what the runs left in the bucket (manifest,
metrics, histories, publication record) and the pointer, so it is never out of step and needs no
state of its own. Per run: data day and volume, users and items, HR/NDCG of every model and of the
production model it was compared with, catalogue coverage, the gate's decision, whether it was
published, seconds per stage, and links to its report and its day's Data Docs. Plots: HR@K and
NDCG@K per model per data day, data volume, catalogue coverage. One self-contained page.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from pathlib import Path

from ncf_tasks import layout
from ncf_tasks.artifacts import EASE_MODEL, MODELS, POPULARITY, RunArtifacts, label, list_runs
from ncf_tasks.storage import Storage

log = logging.getLogger(__name__)
BEYOND_SERIES = {  # beyond's measures drawn over time (shares in [0, 1])
    "overlap": "overlap with production",
    "changed_all": "lists changed completely",
    "gini": "Gini of recommendations",
    "fallback_share": "users served by the fallback",
}


def run_row(run: RunArtifacts, up: str) -> dict:
    """One run as the dashboard shows it (``up``: relative path from the page to the bucket's root)."""
    m = run.manifest()
    metrics = run.metrics(required=False) or {}
    k = metrics.get("k")  # the cut-off this run was evaluated at (None: not evaluated yet)
    models = metrics.get("models", {})
    gate = metrics.get("gate")
    histories = run.histories()
    published = run.publication()
    seconds = [
        m.build_seconds,
        *((histories[x] or {}).get("seconds") for x in MODELS),
        (run.ease_record() or {}).get("seconds"),
        metrics.get("seconds"),
        (published or {}).get("seconds"),
    ]
    return {
        "run_id": run.run_id,
        "k": metrics.get("k"),
        "date": m.end_date or "?",
        "interactions": m.report.get("interactions", 0),
        "n_users": m.n_users,
        "n_items": m.n_items,
        "hr": {name: v[f"hr@{k}"] for name, v in models.items()},
        "ndcg": {name: v[f"ndcg@{k}"] for name, v in models.items()},
        "coverage": metrics.get("full_catalog", {}).get("coverage"),
        "beyond": metrics.get("beyond") or {},
        "gate": "–" if gate is None else "forced" if gate["forced"] else "publish" if gate["publish"] else "reject",
        "model": label(metrics.get("published_model", "neumf")) if metrics else "–",
        "notices": [*((gate or {}).get("notices") or []), *_ease_notice(metrics.get("ease"))],
        "published": published is not None,
        "catalog": (published or {}).get("catalog"),  # what the item catalogue removed from the table, if any
        "durations": ["–" if s is None else f"{s:.0f}" for s in seconds],
        "profile": (m.profile or {}).get("version"),  # the tuned profile the run trained with, if any
        "report": up + run.key(run.REPORT) if metrics else None,
        "data_docs": up + layout.validation_report(m.end_date) + "index.html" if m.end_date else "",
    }


def _ease_notice(ease: dict | None) -> list[str]:
    """A run without EASE^R says why (skipped above ``ease_max_items``, or its task did not run)."""
    if not ease or ease.get("status") == "trained":
        return []
    return [f"EASE^R {ease['status']}: {ease.get('reason', '')}"]


def _plots(storage: Storage, charts: dict[str, tuple]) -> dict[str, str]:
    """``plots.line_chart(*args)`` of each chart, drawn again only when what they are drawn from changed.

    Publish rebuilds the page to show what is now served, which changes the table, not the plots; drawing
    them (matplotlib's import and four charts) was 1.6 s of a publish commit's 2 s. The last drawing is
    kept beside the page under the digest of the charts' data and of ``plots.py``'s source."""
    from ncf_tasks import plots

    digest = hashlib.sha256(
        Path(plots.__file__).read_bytes() + json.dumps(charts, sort_keys=True, default=str).encode()
    ).hexdigest()
    kept = storage.get_json(layout.dashboard_plots(), default=None)
    if isinstance(kept, dict) and kept.get("digest") == digest and set(kept.get("plots", {})) == set(charts):
        return kept["plots"]
    drawn = {name: plots.line_chart(*args) for name, args in charts.items()}
    storage.put_json(layout.dashboard_plots(), {"digest": digest, "plots": drawn})
    return drawn


def rebuild(storage: Storage) -> str:
    """Write ``reports/index.html`` from every run in the bucket; returns its URI."""
    from ncf_tasks.report import render

    up = "../" * layout.dashboard().count("/")
    runs = list_runs(storage)
    rows = [run_row(r, up) for r in runs]
    k = next((r["k"] for r in reversed(rows) if r["k"]), storage.settings.eval_k)  # the newest evaluated run's
    dated = sorted((r for r in rows if r["date"] != "?"), key=lambda r: (r["date"], r["run_id"]))
    day = {r["run_id"]: dt.date.fromisoformat(r["date"]) for r in dated}
    models = [m for m in (*MODELS, EASE_MODEL, POPULARITY, "production") if any(m in r["hr"] for r in rows)]

    def series(field: str) -> dict[str, list]:
        return {m: [(day[r["run_id"]], r[field][m]) for r in dated if m in r[field]] for m in models}

    plots = _plots(
        storage,
        {
            "hr": (series("hr"), f"test HR@{k} per data day", f"HR@{k}"),
            "ndcg": (series("ndcg"), f"test NDCG@{k} per data day", f"NDCG@{k}"),
            "volume": (
                {"interactions": [(day[r["run_id"]], r["interactions"]) for r in dated]},
                "training interactions per run",
                "interactions",
            ),
            "coverage": (
                {"neumf": [(day[r["run_id"]], r["coverage"]) for r in dated if r["coverage"] is not None]},
                f"catalogue coverage of top-{k} lists",
                "share of items",
            ),
            "stability": (
                {
                    label: [(day[r["run_id"]], r["beyond"][key]) for r in dated if r["beyond"].get(key) is not None]
                    for key, label in BEYOND_SERIES.items()
                },
                f"the shipped top-{k} lists: stability and concentration",
                "share",
            ),
        },
    )
    latest = storage.get_json(layout.latest_pointer(), default=None)
    tuning = storage.get_json(layout.tuned_profile(), default=None)
    if tuning:
        tuning = {**tuning, "report": up + layout.tuning_study(tuning["version"]) + "report.html"}
    page = render(
        "dashboard.html.j2",
        runs=list(reversed(rows)),
        models=[m for m in models if m != "production"],
        labels={m: label(m) for m in models},
        k=k,
        plots=plots,
        latest=latest,
        bucket_uri=storage.uri(""),
        tuning=tuning,
        built_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    storage.put_bytes(layout.dashboard(), page.encode(), "text/html")
    log.info("runs dashboard (%d runs): %s", len(rows), storage.uri(layout.dashboard()))
    return storage.uri(layout.dashboard())
