"""Warm start against cold retraining, replaying a history day by day through the real pipeline.

    python benchmarks/warm_start.py [--source ml100k|synthetic] [--days 3] [--set NAME=VALUE ...]

The history (MovieLens 100K, or a synthetic 30-day one) is loaded as daily raw partitions and backfilled
(ingest, validate). For each replayed data date D (``--days`` dates spread over the last part of the
history), production is a cold run up to the partition before D (built, trained, evaluated, published).
Then D is trained twice from the same lake: cold (defaults) and warm (``warm_start=true``, starting from
that production). Compared on the validation split only (the test split is not read): NeuMF's best
validation HR@10 / NDCG@10 and the training time of the three models (the sum of the train tasks). The
curves are NeuMF's validation HR by cumulative training time of the run (GMF, MLP, then NeuMF epochs).
"""

from __future__ import annotations

import argparse
import logging
import statistics

from common import ROOT, embedded_s3, machine, table, today

from ncf_tasks import layout
from ncf_tasks.__main__ import parse_sets
from ncf_tasks.artifacts import RunArtifacts
from ncf_tasks.backfill import run_backfill
from ncf_tasks.build import run_build
from ncf_tasks.evaluate import run_evaluate
from ncf_tasks.generate import SyntheticSpec, run_generate
from ncf_tasks.movielens import run_load_movielens
from ncf_tasks.publish import run_publish
from ncf_tasks.report import time_curve
from ncf_tasks.storage import Storage
from ncf_tasks.train import run_train

MODELS = ("gmf", "mlp", "neumf")


def train_run(settings, storage, run_id: str, day: str) -> dict:
    built = run_build(settings, run_id=run_id, end_date=day)
    out = {m: run_train(settings, run_id=run_id, model=m) for m in MODELS}
    # the curve the run report draws
    curve = [(round(t, 1), hr) for t, hr in time_curve(RunArtifacts(storage, run_id).histories(), 10)]
    n = out["neumf"]
    return {
        "hr": n["val_hr@10"],
        "ndcg": n["val_ndcg@10"],
        "train_s": sum(o["seconds"] for o in out.values()),
        "epochs": [out[m]["epochs"] for m in MODELS],
        "warm": bool(built and n.get("warm_from")),
        "curve": curve,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", choices=("ml100k", "synthetic"), default="ml100k")
    ap.add_argument("--path", default=str(ROOT.parent / "shared" / "data" / "ml-100k" / "u.data"))
    ap.add_argument("--days", type=int, default=3, help="data dates replayed")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with embedded_s3() as settings:
        settings = settings.replace(gate_min_lift=-1.0, gate_tolerance=1.0, **parse_sets(args.set))
        storage = Storage(settings)
        if args.source == "ml100k":
            loaded = run_load_movielens(settings, path=args.path)
            first, last = loaded["first_day"], loaded["last_day"]
        else:
            spec = SyntheticSpec(users=3000, items=1500, days=30, events_per_day=8000, end_date="2026-11-26")
            run_generate(settings, spec=spec)
            first, last = "2026-10-28", spec.end_date
        run_backfill(settings, start=first, end=last)
        rows = [
            (layout.date_of_partition(k), o["size"])
            for o in storage.list(layout.lake_root())
            if (k := o["key"]).endswith(".parquet")
        ]
        dates = sorted(d for d, _ in rows)
        # replayed dates: spread over the last fifth of the partitions, each with a partition before it
        tail = dates[int(len(dates) * 0.8) :]
        picks = [tail[round(i * (len(tail) - 1) / max(args.days - 1, 1))] for i in range(args.days)]
        results = []
        for day in picks:
            prev = dates[dates.index(day) - 1]
            prod = f"prod-{prev}"
            run_build(settings, run_id=prod, end_date=prev)
            for m in MODELS:
                run_train(settings, run_id=prod, model=m)
            run_evaluate(settings, run_id=prod)
            run_publish(settings, run_id=prod, date=prev)
            cold = train_run(settings, storage, f"cold-{day}", day)
            warm = train_run(settings.replace(warm_start=True, cold_weekday=-1), storage, f"warm-{day}", day)
            results.append({"day": day, "prev": prev, "cold": cold, "warm": warm})
            print(results[-1], flush=True)
    head = f"benchmarks/warm_start.py — {today()} — {machine()} — {args.source}" + (
        f" — {' '.join(args.set)}" if args.set else ""
    )
    print(f"\n{head}\n")
    print(
        table(
            [
                {
                    "data date": r["day"],
                    "production": r["prev"],
                    "cold: val HR / NDCG": f"{r['cold']['hr']:.4f} / {r['cold']['ndcg']:.4f}",
                    "warm: val HR / NDCG": f"{r['warm']['hr']:.4f} / {r['warm']['ndcg']:.4f}",
                    "HR warm - cold": f"{r['warm']['hr'] - r['cold']['hr']:+.4f}",
                    "cold train s (epochs G/M/N)": f"{r['cold']['train_s']:.1f} ({'/'.join(map(str, r['cold']['epochs']))})",
                    "warm train s (epochs G/M/N)": f"{r['warm']['train_s']:.1f} ({'/'.join(map(str, r['warm']['epochs']))})",
                    "warm / cold time": f"{r['warm']['train_s'] / r['cold']['train_s']:.2f}",
                }
                for r in results
            ]
        )
    )
    diff = statistics.mean(r["warm"]["hr"] - r["cold"]["hr"] for r in results)
    ratio = statistics.mean(r["warm"]["train_s"] / r["cold"]["train_s"] for r in results)
    print(
        f"\nmean HR warm - cold {diff:+.4f} (target >= -0.005: {'met' if diff >= -0.005 else 'NOT met'}); mean time "
        f"ratio {ratio:.2f} (target <= 0.33: {'met' if ratio <= 1 / 3 else 'NOT met'})\n"
    )
    print(
        "NeuMF validation HR@10 by cumulative training seconds of the run (GMF, MLP, then NeuMF; first point: "
        "NeuMF's start)"
    )
    for r in results:
        for kind in ("cold", "warm"):
            print(f"  {r['day']} {kind}: " + " ".join(f"{t}s:{hr:.3f}" for t, hr in r[kind]["curve"]))


if __name__ == "__main__":
    main()
