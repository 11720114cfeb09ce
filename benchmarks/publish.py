"""Full-catalogue top-100 (publication) and candidate evaluation speed of NeuMF.

    python benchmarks/publish.py [--big-users 100000 --big-items 20000] [--repeat 7]

1. ``publish.Scorer.top_k`` (score every user x every item in bounded chunks, mask seen items, top-k)
   for 6,040 users x 3,706 items (ML-1M sized), and for 100,000 users x 20,000 items with peak memory,
   with numpy (``serving``: what a CPU worker's publish runs) and, as the comparison, with torch
   (``scoring.top_k``: a GPU worker's path, here on the CPU); then the rest of publication in memory:
   ``topk_table`` (string ids, ranks) and its Parquet bytes (what ``Storage.write_parquet`` uploads), so
   the peak covers the whole table, not just scoring.
2. Scoring 6,040 users x 100 candidates and computing HR@10/NDCG@10 (``metrics``).
3. Full-catalogue evaluation of 6,040 test users (``evaluate.full_catalog``: the same chunked scorer as
   publication, ``scoring.masked_scores``, with train/validation items excluded).
Models have random weights: speed does not depend on them. Each user has 20 seen items.
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import statistics
import time

import polars as pl
import torch
from common import PeakRSS, machine, table, today

from ncf_tasks.evaluate import full_catalog
from ncf_tasks.metrics import held_out_rank, hit_ndcg, score_candidates
from ncf_tasks.models import NeuMF
from ncf_tasks.publish import Scorer, topk_table
from ncf_tasks.rundata import RunData
from ncf_tasks.serving import ServingModel, export


def fake_run(n_users: int, n_items: int, seen: int = 20) -> RunData:
    g = torch.Generator().manual_seed(0)
    users = torch.arange(n_users).repeat_interleave(seen)
    items = torch.randint(n_items, (users.numel(),), generator=g)
    cand = torch.randint(n_items, (n_users, 100), generator=g)
    return RunData(
        manifest={},
        n_users=n_users,
        n_items=n_items,
        train_users=users,
        train_items=items,
        valid_users=torch.arange(n_users),
        valid_candidates=cand,
        test_users=torch.arange(n_users),
        test_candidates=cand,
    )


def fake_maps(n_users: int, n_items: int) -> dict:
    """Id maps shaped like the builder's: string ids ("u123", "i45") by dense index."""
    return {
        "users": pl.DataFrame({"user_idx": pl.int_range(n_users, eager=True)}).with_columns(
            user_id=pl.format("u{}", "user_idx")
        ),
        "items": pl.DataFrame({"item_idx": pl.int_range(n_items, eager=True)}).with_columns(
            item_id=pl.format("i{}", "item_idx")
        ),
    }


def median_seconds(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big-users", type=int, default=100_000)
    ap.add_argument("--big-items", type=int, default=20_000)
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="median of N runs for the ML-1M-sized measures (this machine's speed drifts between runs)",
    )
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    for n_users, n_items in ((6040, 3706), (args.big_users, args.big_items)):
        data = fake_run(n_users, n_items)
        net = NeuMF(n_users, n_items, 8, (64, 32, 16, 8)).eval()
        model = ServingModel(
            export(net.state_dict(), {"model": "neumf", "factors": 8, "mlp_layers": [64, 32, 16, 8]}), "bench"
        )
        exclude = tuple(a.numpy() for a in data.all_positives())
        for backend, device in (("torch", "cpu"), ("numpy", None)):
            scorer = Scorer(model, exclude, threads=2, device=device)
            with PeakRSS() as mem:
                base = mem.peak
                t = time.perf_counter()
                u, i, s = scorer.top_k(100, 0, n_users)
                secs = time.perf_counter() - t
                if n_users == 6040 and args.repeat > 1:  # the big case runs once: minutes per run
                    secs = median_seconds(lambda: scorer.top_k(100, 0, n_users), args.repeat)
                t = time.perf_counter()
                tbl = topk_table(fake_maps(n_users, n_items), u, i, s, "bench", dt.datetime.now(dt.UTC))
                tbl.write_parquet(buf := io.BytesIO(), compression="zstd", statistics=True)
                table_secs = time.perf_counter() - t
            rows.append(
                {
                    "measure": f"top-100 of {n_users:,} users x {n_items:,} items ({backend})",
                    "seconds": f"{secs:.1f}",
                    "table + Parquet s": f"{table_secs:.1f}",
                    "Parquet MB": f"{buf.tell() / 1e6:.0f}",
                    "pairs scored/s": f"{n_users * n_items / secs:,.0f}",
                    "rows": f"{len(u):,}",
                    "peak RSS growth MB": f"{mem.peak - base:.0f}",
                }
            )
            print(rows[-1], flush=True)
    data = fake_run(6040, 3706)
    net = NeuMF(6040, 3706, 8, (64, 32, 16, 8)).eval()
    t = time.perf_counter()
    hit_ndcg(held_out_rank(score_candidates(net, data.test_users, data.test_candidates)), 10)
    secs = time.perf_counter() - t
    rows.append(
        {
            "measure": "evaluate 6,040 users x 100 candidates (HR@10, NDCG@10)",
            "seconds": f"{secs:.3f}",
            "table + Parquet s": "-",
            "Parquet MB": "-",
            "pairs scored/s": f"{604_000 / secs:,.0f}",
            "rows": "-",
            "peak RSS growth MB": "-",
        }
    )
    popularity = torch.bincount(data.train_items, minlength=3706).double()
    secs = median_seconds(lambda: full_catalog(net, data, 10, popularity), args.repeat)
    rows.append(
        {
            "measure": "full-catalogue evaluation, 6,040 test users x 3,706 items",
            "seconds": f"{secs:.2f}",
            "table + Parquet s": "-",
            "Parquet MB": "-",
            "pairs scored/s": f"{6040 * 3706 / secs:,.0f}",
            "rows": "-",
            "peak RSS growth MB": "-",
        }
    )
    print(f"\nbenchmarks/publish.py — {today()} — {machine()}, torch {torch.__version__}, 2 threads\n")
    print(table(rows))


if __name__ == "__main__":
    main()
