"""``report.html``: one self-contained page per run (inline CSS and SVG plots, no external assets).

A person should rather look at this than read logs: the metrics table with baselines and production
side by side, the gate decision and why, training curves per model, and the run's data statistics.
"""

from __future__ import annotations

import html
import json

COLORS = {"gmf": "#1f77b4", "mlp": "#ff7f0e", "neumf": "#2ca02c"}


def _svg_lines(series: dict[str, list[tuple[float, float]]], title: str, width: int = 420, height: int = 220) -> str:
    pts = [p for s in series.values() for p in s]
    if not pts:
        return f"<p>{html.escape(title)}: no data</p>"
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    x0, x1 = min(xs), max(max(xs), min(xs) + 1)
    y0, y1 = min(ys), max(ys)
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = 40

    def px(x: float, y: float) -> str:
        return f"{pad + (x - x0) / (x1 - x0) * (width - 2 * pad):.1f},{height - pad - (y - y0) / (y1 - y0) * (height - 2 * pad):.1f}"

    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)}">',
             f'<text x="{width / 2}" y="16" text-anchor="middle" font-size="13">{html.escape(title)}</text>',
             f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>',
             f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#888"/>',
             f'<text x="{pad - 4}" y="{pad + 4}" text-anchor="end" font-size="10">{y1:.3f}</text>',
             f'<text x="{pad - 4}" y="{height - pad}" text-anchor="end" font-size="10">{y0:.3f}</text>',
             f'<text x="{width - pad}" y="{height - pad + 14}" text-anchor="end" font-size="10">epoch {x1:g}</text>']
    for i, (name, s) in enumerate(series.items()):
        color = COLORS.get(name, "#555")
        if s:
            parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{" ".join(px(x, y) for x, y in s)}"/>')
        parts.append(f'<text x="{width - pad - 60}" y="{pad + 14 * i}" font-size="11" fill="{color}">{html.escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_report(metrics: dict, histories: dict[str, dict | None], manifest: dict) -> str:
    k = metrics["k"]
    gate = metrics["gate"]
    verdict = ("FORCED PUBLISH" if gate["forced"] else "PUBLISH") if gate["publish"] else "REJECTED"
    color = "#2ca02c" if gate["passed"] else ("#d62728" if not gate["publish"] else "#ff7f0e")
    rows = []
    for name, m in metrics["models"].items():
        note = f"run {m['run_id']}" if name == "production" else (f"best epoch {m.get('best_epoch')}" if "best_epoch" in m else "train counts")
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{m[f'hr@{k}']:.4f}</td><td>{m[f'ndcg@{k}']:.4f}</td>"
                    f"<td>{html.escape(str(note))}</td></tr>")
    loss, hr = {}, {}
    for name, h in histories.items():
        if h:
            loss[name] = [(e["epoch"], e["loss"]) for e in h["epochs"]]
            hr[name] = [(e["epoch"], e[f"val_hr@{k}"]) for e in h["epochs"]]
    fc = metrics["full_catalog"]
    data = json.dumps(metrics.get("data", {}), indent=2)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>NCF run {html.escape(metrics['run_id'])}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:960px}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}td:first-child,th:first-child{{text-align:left}}
.verdict{{color:#fff;background:{color};padding:6px 12px;display:inline-block;border-radius:4px}}
pre{{background:#f6f6f6;padding:1em;overflow:auto}}</style></head><body>
<h1>NCF run <code>{html.escape(metrics['run_id'])}</code></h1>
<p>Evaluated {html.escape(metrics['evaluated_at'])} on {metrics['test_users']:,} test users, each held-out item ranked
among {metrics['candidates'] - 1} sampled negatives (leave-one-out, ties counted against the model).</p>
<h2>Gate: <span class="verdict" id="gate">{verdict}</span></h2>
<ul>{''.join(f'<li>{html.escape(r)}</li>' for r in gate['reasons'])}</ul>
<h2>Test metrics</h2>
<table id="metrics"><tr><th>model</th><th>HR@{k}</th><th>NDCG@{k}</th><th></th></tr>{''.join(rows)}</table>
<p>Full catalogue (NeuMF, items seen in train/validation excluded): Recall@{k} {fc[f'recall@{k}']:.4f},
NDCG@{k} {fc[f'ndcg@{k}']:.4f}, catalogue coverage of top-{k} lists {fc['coverage']:.1%},
popularity bias {fc['popularity_bias']:.3f} (mean popularity percentile of recommended items; 0.5 ≈ random).</p>
<h2>Training</h2>
{_svg_lines(loss, 'training loss per epoch')}
{_svg_lines(hr, f'validation HR@{k} per epoch')}
<h2>Data</h2>
<p>{manifest['n_users']:,} users × {manifest['n_items']:,} items, {manifest['n_train']:,} train positives,
{len(manifest.get('partitions', []))} lake partitions up to {html.escape(str(manifest.get('end_date', '?')))}.</p>
<pre>{html.escape(data)}</pre>
</body></html>
"""
