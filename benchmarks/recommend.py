"""``reader.recommend`` from the embedded S3 endpoint: 10,000 user ids (known and unknown) answered in one call.

    python benchmarks/recommend.py [--users 100000] [--k 100] [--parts 1] [--repeat 5]

A published table of ``--users`` users × top-``--k`` (random items, as publish writes it: Parquet parts named
by ``recs/topk/_latest.json``, with its fallback list) is put on a fresh endpoint; then ``recommend`` is
asked for 10,000 ids, 9,000 of them in the table and 1,000 it has never seen, ``--repeat`` times (each call
a fresh read: nothing is cached between calls). Target (issue 32): ≤ 1 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import time

import numpy as np
import polars as pl
from common import embedded_s3, machine, table, today

from ncf_tasks import layout
from ncf_tasks.publish import TOPK_COLUMNS
from ncf_tasks.reader import recommend
from ncf_tasks.storage import Storage


def publish_table(storage: Storage, users: int, k: int, parts: int) -> None:
    rng = np.random.default_rng(0)
    ids = np.array([f"u{i:07d}" for i in range(users)])
    day, now = "2026-11-26", dt.datetime(2026, 11, 26, tzinfo=dt.UTC)
    keys = []
    for p, chunk in enumerate(np.array_split(np.arange(users), parts)):
        n = len(chunk)
        df = pl.DataFrame(
            {
                "user_id": np.repeat(ids[chunk], k),
                "rank": np.tile(np.arange(1, k + 1, dtype=np.int16), n),
                "item_id": [f"i{x}" for x in rng.integers(0, 20000, n * k)],
                "score": rng.random(n * k, dtype=np.float32),
                "model_run_id": "bench",
                "model": "neumf",
                "generated_at": now,
            }
        ).select(TOPK_COLUMNS)
        key = layout.topk_table(day, "bench", p, parts)
        storage.write_parquet(df, key)
        keys.append(key)
    fallback = pl.DataFrame(
        {
            "rank": np.arange(1, k + 1, dtype=np.int16),
            "item_id": [f"i{x}" for x in range(k)],
            "score": np.linspace(1, 0, k, dtype=np.float32),
            "model_run_id": "bench",
            "generated_at": now,
        }
    )
    storage.write_parquet(fallback, layout.topk_fallback(day, "bench"))
    storage.put_json(
        layout.latest_pointer(),
        {
            "run_id": "bench",
            "partition": day,
            "files": keys,
            "uri": storage.uri(keys[0]),
            "rows": users * k,
            "k": k,
            "fallback": layout.topk_fallback(day, "bench"),
        },
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--parts", type=int, default=1)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with embedded_s3() as settings:
        storage = Storage(settings)
        publish_table(storage, args.users, args.k, args.parts)
        rng = np.random.default_rng(1)
        known = [f"u{i:07d}" for i in rng.choice(args.users, 9000, replace=False)]
        asked = known + [f"new-{i}" for i in range(1000)]
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            out = recommend(asked, settings=settings)
            times.append(time.perf_counter() - t)
        assert out.height == 10_000 * args.k and out["user_id"].n_unique() == 10_000
        assert out.filter(pl.col("source") == "fallback")["user_id"].n_unique() == 1000
    print(f"benchmarks/recommend.py — {today()} — {machine()}\n")
    print(
        table(
            [
                {
                    "table": f"{args.users:,} users x top-{args.k} ({args.parts} part(s))",
                    "ids asked": "10,000 (9,000 known, 1,000 unknown)",
                    "seconds (median of calls)": f"{statistics.median(times):.3f}",
                    "min / max": f"{min(times):.3f} / {max(times):.3f}",
                    "target ≤ 1 s": "met" if statistics.median(times) <= 1.0 else "NOT met",
                }
            ]
        )
    )


if __name__ == "__main__":
    main()
