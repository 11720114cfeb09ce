"""NeuMF fine-tuning settings against the fused start, on validation only (issue 31, item 5).

    python benchmarks/finetune.py [--datasets ...] [--seeds 0 1] [--grid "neumf_lr=0.001" "neumf_lr=0.0003" ...]
                                  [--set NAME=VALUE ...]

``--datasets`` takes the shared sets of ``quality.py`` and ``ml-1m-sized``: ``benchmarks/train.py``'s synthetic
set (6,040 users x 3,706 items, 1.8M events over 30 days, generator seed 3).

Per data set and seed: build's core (as ``quality.py``), GMF and MLP trained once, then NeuMF fused from them
and fine-tuned once per grid point (``train --model neumf`` with the point's settings). Printed: the fused
start's validation HR@10, the best epoch's, and the best epoch, per point; the mean gain over the fused start
and how many seeds end past epoch 0. No test item is read: this chooses settings, ``quality.py`` then reads
the test split once with the chosen defaults. ``refit`` is off here (selection only; the refit repeats the
chosen epochs on train + validation and does not change which epoch is best).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

from common import embedded_s3_env, machine, table, today, write_core
from quality import DATA, FILES

from ncf_tasks.__main__ import parse_sets
from ncf_tasks.artifacts import RunArtifacts
from ncf_tasks.config import Settings
from ncf_tasks.generate import SyntheticSpec, synthesize
from ncf_tasks.movielens import read_ratings
from ncf_tasks.storage import Storage
from ncf_tasks.train import run_train

SYNTHETIC = "ml-1m-sized"


def events_of(name: str):
    if name == SYNTHETIC:  # benchmarks/train.py's set
        return synthesize(
            SyntheticSpec(users=6040, items=3706, days=30, events_per_day=60_000, seed=3, duplicate_rate=0)
        )
    return read_ratings(str(DATA / name / FILES[name]))


def point(text: str) -> dict:
    return parse_sets([p for p in text.split(",") if p])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=list(FILES), choices=[*FILES, SYNTHETIC])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--grid", nargs="+", default=["neumf_lr=0.001", "neumf_lr=0.0003", "neumf_lr=0.0001"])
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    with embedded_s3_env("finetune") as env:
        base = Settings.from_env(env=env).replace(**{"refit": False, **parse_sets(args.set)})
        storage = Storage(base)
        for name in args.datasets:
            events = events_of(name)
            for seed in args.seeds:
                s = base.replace(seed=seed)
                rid = f"{name}-{seed}"
                write_core(storage, rid, events, s)
                for m in ("gmf", "mlp"):
                    run_train(s, run_id=rid, model=m)
                run = RunArtifacts(storage, rid)
                for g in args.grid:
                    storage.delete([run.key(run.checkpoint("neumf"))])  # or train resumes the last point's run
                    t0 = time.perf_counter()
                    n = run_train(s.replace(**point(g)), run_id=rid, model="neumf")
                    rows.append(
                        {
                            "data set": name,
                            "seed": seed,
                            "point": g,
                            "fused start val HR": n["start_val_hr"],
                            "best val HR": n["val_hr@10"],
                            "best epoch": n["best_epoch"],
                            "s": round(time.perf_counter() - t0, 1),
                        }
                    )
                    print(rows[-1], flush=True)
    summary = []
    for name in args.datasets:
        for g in args.grid:
            rs = [r for r in rows if r["data set"] == name and r["point"] == g]
            summary.append(
                {
                    "data set": name,
                    "point": g,
                    "mean fused start val HR": f"{statistics.mean(r['fused start val HR'] for r in rs):.4f}",
                    "mean best val HR": f"{statistics.mean(r['best val HR'] for r in rs):.4f}",
                    "best epoch > 0": f"{sum(r['best epoch'] > 0 for r in rs)}/{len(rs)}",
                    "mean s": f"{statistics.mean(r['s'] for r in rs):.0f}",
                }
            )
    print(f"\n{today()}, {machine()}; settings {args.set or 'defaults'}, refit off\n")
    print(table(summary))


if __name__ == "__main__":
    main()
