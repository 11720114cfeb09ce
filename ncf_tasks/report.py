"""``report.html``: one self-contained page per run (Jinja2 template, matplotlib plots as inline SVG).

A person should rather look at this than read logs: the metrics table with baselines and production
side by side, the gate decision and why, each model's training (epochs run, best epoch, why it stopped,
the start it improved on: for NeuMF the fused α·GMF + (1−α)·MLP), curves per epoch, and the run's data.
It links the runs dashboard and the day's validation Data Docs (relative links: they work in the
bucket and in a local copy of it). Templates: ``include/templates/``; everything is autoescaped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TEMPLATES = Path(__file__).resolve().parents[1] / "include" / "templates"


def render(template: str, **context: Any) -> str:
    """A page from ``include/templates/<template>`` with autoescaping (ids and reasons are data)."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    return env.get_template(template).render(**context)


def training_summary(histories: dict[str, dict | None], k: int) -> dict[str, dict]:
    """Per trained model: epochs run, best epoch, why training stopped, start and best validation HR@k."""
    out = {}
    for name, h in histories.items():
        if not h:
            continue
        epochs = h.get("epochs", [])
        init = h.get("init") or {}
        start, start_ndcg = init.get(f"val_hr@{k}"), init.get(f"val_ndcg@{k}")
        best_row = next((e for e in epochs if e["epoch"] == h.get("best_epoch")), None)
        best, best_ndcg = (best_row[f"val_hr@{k}"], best_row[f"val_ndcg@{k}"]) if best_row else (start, start_ndcg)
        out[name] = {
            "epochs_run": len(epochs),
            "best_epoch": h.get("best_epoch"),
            "stop_reason": h.get("stop_reason", "–"),
            "start_val_hr": start,
            "start_val_ndcg": start_ndcg,
            "best_val_hr": best,
            "best_val_ndcg": best_ndcg,
            "fused": bool(init.get("fused")),
            "warm": init.get("warm"),
            "seconds": h.get("seconds"),
            "refit": h.get("refit"),
        }
    return out


def _data_rows(manifest: dict, data: dict) -> list[tuple[str, str]]:
    rows = [
        ("users × items", f"{manifest['n_users']:,} × {manifest['n_items']:,}"),
        ("train positives", f"{manifest['n_train']:,}"),
        (
            "lake partitions",
            f"{len({p['date'] for p in manifest.get('partitions', [])})} up to {manifest.get('end_date', '?')}",
        ),
    ]
    for key, value in data.items():
        if isinstance(value, dict):
            rows += [(f"{key}: {k}", str(v)) for k, v in value.items()]
        else:
            rows.append((key, f"{value:,}" if isinstance(value, int) else str(value)))
    return rows


def time_curve(histories: dict[str, dict | None], k: int) -> list[tuple[float, float]]:
    """NeuMF's validation HR@k by cumulative training seconds of the run (GMF, MLP, then NeuMF's epochs;
    the first point is NeuMF's start): how fast a run gets where it ends."""
    t, curve = 0.0, []
    for name in ("gmf", "mlp", "neumf"):
        h = histories.get(name) or {}
        if name == "neumf" and h:
            curve.append((round(t, 2), (h.get("init") or {}).get(f"val_hr@{k}")))
        for e in h.get("epochs", []):
            t += e.get("epoch_s", 0.0)
            if name == "neumf":
                curve.append((round(t, 2), e[f"val_hr@{k}"]))
    return [(x, y) for x, y in curve if y is not None]


def _note(name: str, m: dict) -> str:
    """The models table's note: what each row is."""
    if name == "production":
        return f"run {m['run_id']}" + (f" ({m['model']})" if m.get("model") else "")
    if "best_epoch" in m:
        return f"best epoch {m['best_epoch']}"
    if m.get("lambda") is not None:
        return f"closed form, λ {m['lambda']:.4g}"
    return "item counts"


def render_report(
    metrics: dict, histories: dict[str, dict | None], manifest: dict, warm_from: dict[str, dict | None] | None = None
) -> str:
    """The run's page; ``warm_from``: the histories of the run a warm start began from, whose curve by
    training time is drawn next to this run's."""
    from ncf_tasks import layout
    from ncf_tasks.artifacts import label as gate_label
    from ncf_tasks.errors import ConfigError
    from ncf_tasks.plots import line_chart

    k = metrics["k"]
    gate = metrics["gate"]
    verdict = ("FORCED PUBLISH" if gate["forced"] else "PUBLISH") if gate["publish"] else "REJECTED"
    color = "#2ca02c" if gate["passed"] else ("#d62728" if not gate["publish"] else "#ff7f0e")
    notes = {name: _note(name, m) for name, m in metrics["models"].items()}
    published = metrics.get("published_model", "neumf")
    training = training_summary(histories, k)
    loss = {n: [(e["epoch"], e["loss"]) for e in h["epochs"]] for n, h in histories.items() if h}
    hr = {n: [(e["epoch"], e[f"val_hr@{k}"]) for e in h["epochs"]] for n, h in histories.items() if h}
    marks = {
        n: (0, t["start_val_hr"], f"{n} start{' (fused)' if t['fused'] else ''}")
        for n, t in training.items()
        if t["start_val_hr"] is not None and n == "neumf"
    }
    up = "../" * layout.run_prefix(metrics["run_id"]).count("/")  # from runs/<id>/ to the bucket's root
    links = {"dashboard": up + layout.dashboard(), "data_docs": up + layout.dashboard()}
    try:
        links["data_docs"] = up + layout.validation_report(manifest["end_date"]) + "index.html"
    except (KeyError, ConfigError):  # a set built without an end date links the dashboard only
        pass
    return render(
        "report.html.j2",
        m=metrics,
        k=k,
        verdict=verdict,
        verdict_color=color,
        notes=notes,
        published_label=gate_label(published),
        ease=metrics.get("ease") or {"status": "absent", "reason": "evaluated before EASE^R was part of a run"},
        fc=metrics["full_catalog"],
        training=training,
        manifest=manifest,
        links=links,
        data_rows=_data_rows(manifest, metrics.get("data", {})),
        plots={
            "loss": line_chart(loss, "training loss per epoch", "log loss", "epoch"),
            "hr": line_chart(hr, f"validation HR@{k} per epoch", f"HR@{k}", "epoch", marks=marks),
            "warm": line_chart(
                {
                    f"this run (warm from {manifest['warm']['from_run']})": time_curve(histories, k),
                    "the run it started from": time_curve(warm_from, k),
                },
                f"NeuMF validation HR@{k} by training time",
                f"HR@{k}",
                "seconds of training (GMF + MLP + NeuMF)",
            )
            if warm_from and manifest.get("warm")
            else "",
        },
    )
