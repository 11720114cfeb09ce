"""What an item catalogue costs publication (issue 32: ≤ 10% more than publishing without one).

    python benchmarks/publish_catalog.py [--sizes 6040x3706 100000x20000] [--blocked 0.1] [--repeat 5]

Per size, back to back and alternating (this VM drifts within minutes): the numpy scorer's top-100 of every
user (``publish.Scorer.top_k``, a CPU worker's score shard) plus the table's Parquet bytes, without a
catalogue and with one that blocks ``--blocked`` of the items at random (the items scoring -inf, the
displaced-slot count), plus the fallback's filtering (``publish.write_fallback``'s work: a join on the
blocked indices) in the catalogue case. NeuMF with random weights, 20 seen items per user. The median of
``--repeat`` runs each (one run for sizes above 10^8 pairs: minutes per run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import statistics
import time

import numpy as np
import polars as pl
import torch
from common import machine, table, today
from publish import fake_maps, fake_run

from ncf_tasks.models import NeuMF
from ncf_tasks.publish import Scorer, topk_table
from ncf_tasks.serving import ServingModel, export


class Blocked:
    def __init__(self, blocked: np.ndarray):
        self.blocked = blocked


def publish_once(scorer: Scorer, maps: dict, n_users: int, fallback: pl.DataFrame | None) -> float:
    t = time.perf_counter()
    u, i, s = scorer.top_k(100, 0, n_users)
    topk_table(maps, u, i, s, "bench", dt.datetime.now(dt.UTC)).write_parquet(io.BytesIO(), compression="zstd")
    if fallback is not None:
        blocked = pl.Series(scorer.available.blocked).implode()
        fallback.filter(~pl.col("item_idx").is_in(blocked)).head(100)
    return time.perf_counter() - t


def chunk_profile(model: ServingModel, blocked: np.ndarray, k: int = 100, repeat: int = 20) -> dict:
    """The catalogue's own work on one scorer chunk (gather the blocked items' scores, set them to -inf, count
    the displaced slots) against the chunk's scoring: a steadier figure than whole runs on a drifting VM."""
    from ncf_tasks.serving import displaced

    step = model.chunk_users()
    base = model.scores(0, step)
    times = {"score": [], "catalogue": []}
    for _ in range(repeat):
        t = time.perf_counter()
        model.scores(0, step)
        times["score"].append(time.perf_counter() - t)
        s = base.copy()
        t = time.perf_counter()
        held = s[:, blocked]
        s[:, blocked] = -np.inf
        top = -np.sort(-np.partition(s, s.shape[1] - k, axis=1)[:, -k:], axis=1)
        extra = time.perf_counter() - t
        t = time.perf_counter()
        np.partition(s, s.shape[1] - k, axis=1)  # the top-k itself, which runs with or without a catalogue
        extra -= time.perf_counter() - t
        t = time.perf_counter()
        displaced(top, held)
        times["catalogue"].append(extra + time.perf_counter() - t)
    return {k: statistics.median(v) * 1000 for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["6040x3706", "100000x20000"])
    ap.add_argument("--blocked", type=float, default=0.1, help="share of the items the catalogue blocks")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--profile-only", action="store_true", help="only the one-chunk profile (seconds, not minutes)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    for size in args.sizes:
        n_users, n_items = map(int, size.split("x"))
        data = fake_run(n_users, n_items)
        net = NeuMF(n_users, n_items, 8, (64, 32, 16, 8)).eval()
        model = ServingModel(
            export(net.state_dict(), {"model": "neumf", "factors": 8, "mlp_layers": [64, 32, 16, 8]}), "bench"
        )
        exclude = tuple(a.numpy() for a in data.all_positives())
        rng = np.random.default_rng(0)
        blocked = np.sort(rng.choice(n_items, int(n_items * args.blocked), replace=False)).astype(np.int64)
        fallback = pl.DataFrame({"item_idx": rng.permutation(n_items), "score": np.sort(rng.random(n_items))[::-1]})
        maps = fake_maps(n_users, n_items)
        plain = Scorer(model, exclude, threads=2)
        filtered = Scorer(model, exclude, threads=2, available=Blocked(blocked))
        repeat = 0 if args.profile_only else args.repeat if n_users * n_items <= 10**8 else 1
        times: dict[str, list[float]] = {"without": [], "with": []}
        for _ in range(repeat):
            times["without"].append(publish_once(plain, maps, n_users, None))
            times["with"].append(publish_once(filtered, maps, n_users, fallback))
            print(size, {k: round(v[-1], 2) for k, v in times.items()}, flush=True)
        a, b = (statistics.median(times[k]) if times[k] else float("nan") for k in ("without", "with"))
        prof = chunk_profile(model, blocked)
        rows.append(
            {
                "users x items": f"{n_users:,} x {n_items:,}",
                "blocked items": f"{blocked.size:,}",
                "runs": repeat,
                "without catalogue s": f"{a:.2f}",
                "with catalogue + fallback s": f"{b:.2f}",
                "cost": f"{100 * (b / a - 1):+.1f}%",
                "slots removed (last run)": f"{filtered.last_removed:,}",
                "one chunk: scoring ms / catalogue ms": f"{prof['score']:.2f} / {prof['catalogue']:.2f} "
                f"({100 * prof['catalogue'] / prof['score']:+.1f}%)",
            }
        )
    print(f"\n{today()}, {machine()}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
