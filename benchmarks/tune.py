"""An ``ncf_tune`` study on an ML-1M-sized set against issue 31's target: 40 trials within 30 minutes on 2 cores.

    python benchmarks/tune.py [--trials 40] [--budget-minutes 30] [--users 6040] [--items 3706]
                              [--events-per-day 35000]

The set is ``benchmarks/ease.py``'s (synthetic, the size of ML-1M: 6,040 users x 3,706 items, ~1M
interactions). The study runs as the ``ncf_tune`` DAG runs it (``tune.run_tune`` with a trial budget and a
time budget; TPE sampler, median pruner, trial 0 = today's defaults) and logs each trial. Printed: how many
trials finished within the time budget (complete / pruned), the wall time, trial 0's validation HR@10 and the
best trial's. The target is met when all ``--trials`` finish inside ``--budget-minutes``.
"""

from __future__ import annotations

import argparse
import logging
import time

import torch
from common import embedded_s3_env, machine, table, today, write_core

from ncf_tasks.config import Settings
from ncf_tasks.generate import SyntheticSpec, synthesize
from ncf_tasks.storage import Storage
from ncf_tasks.tune import run_tune


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=40)
    ap.add_argument("--budget-minutes", type=float, default=30.0)
    ap.add_argument("--users", type=int, default=6040)
    ap.add_argument("--items", type=int, default=3706)
    ap.add_argument("--events-per-day", type=int, default=35000)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("botocore", "urllib3", "s3transfer"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    torch.set_num_threads(2)
    with embedded_s3_env("tune") as env:
        settings = Settings.from_env(env=env)
        storage = Storage(settings)
        ev = synthesize(
            SyntheticSpec(users=args.users, items=args.items, days=30, events_per_day=args.events_per_day, seed=3)
        )
        m = write_core(storage, "ml1m-size", ev, settings)
        t0 = time.perf_counter()
        r = run_tune(
            settings, run_id="ml1m-size", study="bench", trials=args.trials, timeout_s=args.budget_minutes * 60
        )
        wall = time.perf_counter() - t0
    met = r["trials"] >= args.trials and wall <= args.budget_minutes * 60
    print(f"\nbenchmarks/tune.py — {today()} — {machine()}\n")
    print(f"set: {m.n_users:,} users x {m.n_items:,} items, {m.n_train:,} train rows; best settings {r['settings']}\n")
    print(
        table(
            [
                {
                    "study": f"{args.trials} trials, {args.budget_minutes:g} min budget",
                    "trials finished (complete / pruned)": f"{r['trials']} ({r['complete']} / {r['pruned']})",
                    "wall": f"{wall / 60:.1f} min",
                    "trial 0 val HR@10": r["baseline_value"],
                    "best val HR@10": r["best_value"],
                    "target": "met" if met else "NOT met",
                }
            ]
        )
    )


if __name__ == "__main__":
    main()
