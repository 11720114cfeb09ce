"""Plots for the pages a person reads (run report, runs dashboard): matplotlib figures as inline SVG.

Inline SVG keeps every page one self-contained file that opens offline, from the bucket or a local
copy. Output is deterministic (fixed element ids, no date metadata), so rebuilding a page from the
same data writes the same bytes. matplotlib is imported here only, with the Agg backend (no display).
"""

from __future__ import annotations

import io
from typing import Sequence

COLORS = {"gmf": "#1f77b4", "mlp": "#ff7f0e", "neumf": "#2ca02c", "popularity": "#7f7f7f", "production": "#9467bd"}


def line_chart(series: dict[str, Sequence[tuple[object, float]]], title: str, ylabel: str, xlabel: str = "",
               marks: dict[str, tuple[object, float, str]] | None = None, width: float = 5.2,
               height: float = 2.9) -> str:
    """An SVG line chart: one line per series of (x, y) points, with ticks, grid and a legend.
    ``marks``: a labelled point per series (e.g. NeuMF's fused start at epoch 0)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.dates import DateFormatter, DayLocator
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    with matplotlib.rc_context({"svg.hashsalt": "ncf", "svg.fonttype": "none", "font.size": 9}):
        fig = Figure(figsize=(width, height), dpi=100)
        ax = fig.subplots()
        drawn = False
        for name, pts in series.items():
            if not pts:
                continue
            xs, ys = zip(*pts)
            ax.plot(xs, ys, marker="o", markersize=3, linewidth=1.5, label=name, color=COLORS.get(name))
            drawn = True
        for name, (x, y, label) in (marks or {}).items():
            ax.plot([x], [y], marker="D", markersize=6, linestyle="none", color=COLORS.get(name), label=label)
            drawn = True
        ax.set_title(title)
        ax.set_ylabel(ylabel)
        if xlabel:
            ax.set_xlabel(xlabel)
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend(fontsize=8, loc="best")
        else:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", transform=ax.transAxes)
        days = [p[0] for s in series.values() for p in s if hasattr(p[0], "year")]
        if days:  # one tick per day (or per few days): data days, not hours
            span = (max(days) - min(days)).days
            ax.xaxis.set_major_locator(DayLocator(interval=max(1, span // 7)))
            ax.xaxis.set_major_formatter(DateFormatter("%Y-%m-%d"))
            fig.autofmt_xdate()
        else:  # epochs
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]
