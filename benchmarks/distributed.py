"""Data-parallel training (``train_procs``) against one process, on the validation split.

    python benchmarks/distributed.py [--procs 1 2] [--seeds 0 1 2] [--set NAME=VALUE ...]

MovieLens 100K through the real pipeline (load, backfill, build); for each seed, GMF, MLP and NeuMF are
trained with each process count from the same training set (same global batch, same epochs and
patience). Reported: each model's best validation HR@10 / NDCG@10 and the training seconds. On CPU the
ranks use gloo and split the cores (``cores // procs`` threads each); on CUDA (``--set device=cuda``) one
GPU per rank with NCCL.
"""

from __future__ import annotations

import argparse
import logging
import statistics
from pathlib import Path

from common import ROOT, embedded_s3, machine, table, today

from ncf_tasks.__main__ import parse_sets
from ncf_tasks.backfill import run_backfill
from ncf_tasks.build import run_build
from ncf_tasks.movielens import run_load_movielens
from ncf_tasks.storage import Storage
from ncf_tasks.train import run_train

MODELS = ("gmf", "mlp", "neumf")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--path", default=str(ROOT.parent / "shared" / "data" / "ml-100k" / "u.data"))
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument(
        "--noise",
        action="store_true",
        help="also train 1 process with another training seed on the same split: the difference a "
        "second random stream alone makes, to hold the data-parallel difference against",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows, diffs = [], []
    with embedded_s3() as settings:
        settings = settings.replace(**parse_sets(args.set))
        storage = Storage(settings)
        loaded = run_load_movielens(settings, path=args.path)
        run_backfill(settings, start=loaded["first_day"], end=loaded["last_day"])
        for seed in args.seeds:
            s = settings.replace(seed=seed)
            rid = f"d{seed}"
            run_build(s, run_id=rid, end_date=loaded["last_day"])
            by_procs = {}
            for procs in args.procs + (["1, other stream"] if args.noise else []):
                for m in MODELS:
                    storage.delete_prefix(f"runs/{rid}/{m}")
                other = isinstance(procs, str)  # the build's split stays; only training's random stream changes
                t = s.replace(train_procs=1, seed=seed + 1000) if other else s.replace(train_procs=procs)
                out = {m: run_train(t, run_id=rid, model=m) for m in MODELS}
                by_procs[procs] = out
                rows.append(
                    {
                        "seed": seed,
                        "processes": procs,
                        **{
                            f"{m} val HR / NDCG": f"{out[m]['val_hr@10']:.4f} / {out[m]['val_ndcg@10']:.4f}"
                            for m in MODELS
                        },
                        "epochs G/M/N": "/".join(str(out[m]["epochs"]) for m in MODELS),
                        "train s": f"{sum(out[m]['seconds'] for m in MODELS):.1f}",
                    }
                )
                print(rows[-1], flush=True)
            base = by_procs[args.procs[0]]
            for procs in [p for p in by_procs if p != args.procs[0]]:
                diffs += [((procs, m), by_procs[procs][m]["val_hr@10"] - base[m]["val_hr@10"]) for m in MODELS]
    print(
        f"\nbenchmarks/distributed.py — {today()} — {machine()} — {Path(args.path).name}"
        + (f" — {' '.join(args.set)}" if args.set else "")
        + "\n"
    )
    print(table(rows))
    for procs in dict.fromkeys(p for (p, _), _ in diffs):
        for m in MODELS:
            d = [x for (p, name), x in diffs if (p, name) == (procs, m)]
            print(
                f"{m}: validation HR@10 of {procs} process(es) minus {args.procs[0]}: mean {statistics.mean(d):+.4f}, "
                f"largest |difference| {max(map(abs, d)):.4f}"
            )


if __name__ == "__main__":
    main()
