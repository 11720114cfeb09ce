"""Training-set builder: negative sampling speed and build time.

    python benchmarks/dataset.py [--big 20000000]

1. One epoch of 4 training negatives for every train positive of a 1M-interaction set (ML-1M sized:
   6,040 users x 3,706 items): ``sampling.train_negatives`` against, in the same run, the paper's
   reference sampler (a Python loop per positive with a set-membership check).
2. ``build_training_set`` (dedupe, k-core, id maps, leave-one-out split, 99 candidates per held-out
   item) on 1M and on a ~20M-interaction synthetic set, with peak memory of the process.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import PeakRSS, machine, table, today

from ncf_tasks.build import build_training_set
from ncf_tasks.config import Settings
from ncf_tasks.generate import SyntheticSpec, synthesize
from ncf_tasks.sampling import PositiveSet, train_negatives


def reference_sampler(users: np.ndarray, items: np.ndarray, n_items: int, k: int, seed: int) -> np.ndarray:
    """The paper's loop (NCF get_train_instances): one draw at a time, resample while a positive."""
    rng = np.random.default_rng(seed)
    positives = set(zip(users.tolist(), items.tolist()))
    out = np.empty(len(users) * k, dtype=np.int64)
    n = 0
    for u in users.tolist():
        for _ in range(k):
            j = int(rng.integers(n_items))
            while (u, j) in positives:
                j = int(rng.integers(n_items))
            out[n] = j
            n += 1
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--big", type=int, default=20_000_000, help="events of the large synthetic set")
    args = ap.parse_args()
    torch.set_num_threads(2)
    settings = Settings.from_env(env={})
    rows = []

    ev = synthesize(SyntheticSpec(users=6040, items=3706, days=30, events_per_day=60_000, seed=3, duplicate_rate=0))
    t = time.perf_counter()
    ts = build_training_set(ev, settings)
    build_1m = time.perf_counter() - t
    u = torch.from_numpy(ts.train["user_idx"].to_numpy(writable=True)).long()
    i = torch.from_numpy(ts.train["item_idx"].to_numpy(writable=True)).long()
    n_items = ts.items.height
    pos = PositiveSet(u, i, ts.users.height, n_items)
    t = time.perf_counter()
    neg = train_negatives(pos, u, 4, torch.Generator().manual_seed(0))
    ours = time.perf_counter() - t
    t = time.perf_counter()
    ref = reference_sampler(u.numpy(), i.numpy(), n_items, 4, 0)
    reference = time.perf_counter() - t
    assert neg.numel() == ref.size
    rows.append(
        {
            "measure": f"one epoch of 4 negatives, {u.numel():,} train positives ({ts.report['interactions']:,} interactions)",
            "ours s": f"{ours:.3f}",
            "reference loop s": f"{reference:.1f}",
            "speed-up": f"{reference / ours:,.0f}x",
            "peak RSS MB": "-",
        }
    )
    rows.append(
        {
            "measure": f"build_training_set, {ts.report['interactions']:,} interactions, {ts.report['users']:,} users x {ts.report['items']:,} items",
            "ours s": f"{build_1m:.2f}",
            "reference loop s": "-",
            "speed-up": "-",
            "peak RSS MB": "-",
        }
    )
    print(rows, flush=True)

    n_users, n_items = 138_000, 27_000
    ev = synthesize(
        SyntheticSpec(users=n_users, items=n_items, days=1, events_per_day=args.big, seed=4, duplicate_rate=0)
    )
    with PeakRSS() as mem:
        t = time.perf_counter()
        ts = build_training_set(ev, settings)
        big = time.perf_counter() - t
    rows.append(
        {
            "measure": f"build_training_set, {ts.report['interactions']:,} interactions, {ts.report['users']:,} users x {ts.report['items']:,} items",
            "ours s": f"{big:.1f}",
            "reference loop s": "-",
            "speed-up": "-",
            "peak RSS MB": f"{mem.peak:.0f}",
        }
    )
    u = torch.from_numpy(ts.train["user_idx"].to_numpy(writable=True)).long()
    pos = PositiveSet(
        u, torch.from_numpy(ts.train["item_idx"].to_numpy(writable=True)).long(), ts.users.height, ts.items.height
    )
    t = time.perf_counter()
    train_negatives(pos, u, 4, torch.Generator().manual_seed(0))
    rows.append(
        {
            "measure": f"one epoch of 4 negatives, {u.numel():,} train positives (bitset membership)",
            "ours s": f"{time.perf_counter() - t:.2f}",
            "reference loop s": "-",
            "speed-up": "-",
            "peak RSS MB": "-",
        }
    )
    print(f"\nbenchmarks/dataset.py — {today()} — {machine()}, torch threads 2\n")
    print(table(rows))


if __name__ == "__main__":
    main()
