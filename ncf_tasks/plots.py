"""Plots for the pages a person reads (run report, runs dashboard): matplotlib figures as inline SVG.

Inline SVG keeps every page one self-contained file that opens offline, from the bucket or a local
copy. Output is deterministic (fixed element ids, no date metadata), so rebuilding a page from the
same data writes the same bytes. matplotlib is imported here only, with the Agg backend (no display).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

COLORS = {"gmf": "#1f77b4", "mlp": "#ff7f0e", "neumf": "#2ca02c", "popularity": "#7f7f7f", "production": "#9467bd"}


def _figure(width: float, height: float):
    """A matplotlib Figure with the pages' deterministic SVG settings (Agg backend, no display)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


RC = {"svg.hashsalt": "ncf", "svg.fonttype": "none", "font.size": 9}


def _svg(fig) -> str:
    import matplotlib

    with matplotlib.rc_context(RC):
        fig.tight_layout()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    svg = buf.getvalue()
    return svg[svg.index("<svg") :]


def line_chart(
    series: dict[str, Sequence[tuple[object, float]]],
    title: str,
    ylabel: str,
    xlabel: str = "",
    marks: dict[str, tuple[object, float, str]] | None = None,
    width: float = 5.2,
    height: float = 2.9,
) -> str:
    """An SVG line chart: one line per series of (x, y) points, with ticks, grid and a legend.
    ``marks``: a labelled point per series (e.g. NeuMF's fused start at epoch 0)."""
    import matplotlib
    from matplotlib.dates import DateFormatter, DayLocator
    from matplotlib.ticker import MaxNLocator

    with matplotlib.rc_context(RC):
        fig = _figure(width, height)
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
        return _svg(fig)


STATE_COLORS = {"complete": "#2ca02c", "pruned": "#ff7f0e", "fail": "#d62728"}


def trials_chart(points: Sequence[tuple[int, float, str]], ylabel: str) -> str:
    """A study's objective per trial: (trial number, value, state); pruned trials at their last report."""
    import matplotlib

    with matplotlib.rc_context(RC):
        fig = _figure(5.2, 2.9)
        ax = fig.subplots()
        for state, color in STATE_COLORS.items():
            pts = [(n, v) for n, v, st in points if st == state]
            if pts:
                xs, ys = zip(*pts)
                ax.scatter(xs, ys, s=14, color=color, label=state)
        best, running = [], float("-inf")
        for n, v, st in sorted(points):
            if st == "complete" and v > running:
                running = v
            best.append((n, running if running > float("-inf") else float("nan")))
        if best:
            ax.step(*zip(*best), where="post", color="#1f77b4", linewidth=1.2, label="best so far")
        ax.set_title("objective per trial")
        ax.set_xlabel("trial")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        return _svg(fig)


def bar_chart(values: dict[str, float], title: str) -> str:
    """Horizontal bars, largest on top (a study's parameter importances)."""
    import matplotlib

    with matplotlib.rc_context(RC):
        fig = _figure(5.2, 0.6 + 0.3 * max(len(values), 1))
        ax = fig.subplots()
        names = list(values)[::-1]
        ax.barh(names, [values[n] for n in names], color="#1f77b4")
        ax.set_title(title)
        ax.grid(True, axis="x", alpha=0.3)
        return _svg(fig)
