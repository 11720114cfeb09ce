"""Model quality on the three shared data sets: popularity, EASE^R, GMF, MLP, NeuMF, on the same splits.

    python benchmarks/quality.py [--datasets ml-100k movietweetings-100k lastfm-2k-tags] [--seeds 0 1 2 3 4]
                                 [--set NAME=VALUE ...] [--tune TRIALS [--tune-minutes 20] [--tune-seed 0]]

Per data set (``../shared/data/<name>/``: MovieLens 100K, dense; MovieTweetings 100K, very sparse; Last.fm 2K
tagging dates, monthly so many ties) and seed: the file's events go through build's core
(``build_training_set``: de-duplication, k-core, leave-one-out with 99 sampled negatives; ingest and
validation have benchmarks of their own), then the pipeline's stages as a nightly run runs them: ``train``
for GMF, MLP, NeuMF and EASE^R, ``evaluate`` (popularity, the gate, the published model). Epochs and
EASE^R's λ are chosen on validation; the test items are read by evaluate alone, once.

Printed per data set: test HR@10 / NDCG@10, mean ± standard deviation over the seeds, of every model; per
seed NeuMF's test figures, the best of GMF/MLP, EASE^R's, NeuMF's fused start and best epoch on
validation; and issue 31's targets: NeuMF ≥ EASE^R in mean HR@10 and NDCG@10, NeuMF ≥ best of GMF/MLP + 0.01
HR@10 in ≥ 4 of 5 seeds, NeuMF's best epoch > 0 in ≥ 4 of 5 seeds, NeuMF clearing popularity by the gate's
lift. ``--tune N``: an ``ncf_tune`` study of N trials on seed ``--tune-seed``'s validation split, then every
seed again with the tuned profile (as a nightly run picks it up).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time

from common import ROOT, embedded_s3_env, machine, table, today, write_core

from ncf_tasks import layout
from ncf_tasks.__main__ import parse_sets
from ncf_tasks.config import Settings
from ncf_tasks.evaluate import run_evaluate
from ncf_tasks.movielens import read_ratings
from ncf_tasks.profile import resolve
from ncf_tasks.storage import Storage
from ncf_tasks.train import run_train
from ncf_tasks.tune import run_tune

DATA = ROOT.parent / "shared" / "data"
FILES = {
    "ml-100k": "u.data",
    "movietweetings-100k": "ratings.dat",
    "lastfm-2k-tags": "interactions.csv",
}
MODELS = ("popularity", "ease", "gmf", "mlp", "neumf")
LABELS = {"popularity": "item popularity", "ease": "EASE^R", "gmf": "GMF", "mlp": "MLP", "neumf": "NeuMF"}


def run_seeds(settings: Settings, storage: Storage, events, seeds: list[int], tag: str) -> list[dict]:
    """One run per seed: build's core, train the four models, evaluate. Returns one row per seed."""
    out = []
    for seed in seeds:
        s = settings.replace(seed=seed)
        rid = f"{tag}{seed}"
        t0 = time.perf_counter()
        storage.delete_prefix(f"runs/{rid}/")
        s, record = resolve(s, storage)  # the tuned profile a nightly build would record, if one is published
        write_core(storage, rid, events, s, profile=record)
        trained = {m: run_train(s, run_id=rid, model=m) for m in ("gmf", "mlp", "neumf", "ease")}
        ev = run_evaluate(s, run_id=rid)
        n = trained["neumf"]
        out.append(
            {
                "seed": seed,
                "test": {m: (v["hr@10"], v["ndcg@10"]) for m, v in ev["metrics"].items() if m in MODELS},
                "fused_start_val": (n["start_val_hr"], n["start_val_ndcg@10"]),
                "best_val": (n["val_hr@10"], n["val_ndcg@10"]),
                "best_epoch": n["best_epoch"],
                "lambda": trained["ease"].get("lambda"),
                "ease_seconds": trained["ease"].get("seconds"),
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        print(tag, out[-1], flush=True)
    return out


def report(title: str, rows: list[dict], lift: float) -> dict:
    def fmt(xs):
        return f"{statistics.mean(xs):.4f} ± {statistics.pstdev(xs):.4f}"

    print(f"\n{title}\n")
    print(
        table(
            [
                {
                    "model": LABELS[m],
                    "HR@10": fmt([r["test"][m][0] for r in rows]),
                    "NDCG@10": fmt([r["test"][m][1] for r in rows]),
                    "seeds": len(rows),
                }
                for m in MODELS
                if all(m in r["test"] for r in rows)
            ]
        )
    )
    print()
    print(
        table(
            [
                {
                    "seed": r["seed"],
                    "NeuMF test HR / NDCG": "{:.4f} / {:.4f}".format(*r["test"]["neumf"]),
                    "best of GMF, MLP (test HR)": f"{max(r['test']['gmf'][0], r['test']['mlp'][0]):.4f}",
                    "EASE^R test HR / NDCG (λ)": "{:.4f} / {:.4f}".format(*r["test"]["ease"]) + f" ({r['lambda']:.3g})"
                    if "ease" in r["test"]
                    else "skipped",
                    "fused start (val HR / NDCG)": "{:.4f} / {:.4f}".format(*r["fused_start_val"]),
                    "best epoch (val HR / NDCG)": "{}: {:.4f} / {:.4f}".format(r["best_epoch"], *r["best_val"]),
                    "seconds (EASE^R)": f"{r['seconds']} ({r['ease_seconds']})",
                }
                for r in rows
            ]
        )
    )
    n = len(rows)

    def mean(m, j):
        return statistics.mean(r["test"][m][j] for r in rows) if all(m in r["test"] for r in rows) else float("nan")

    hr, nd, ehr, end, pop = mean("neumf", 0), mean("neumf", 1), mean("ease", 0), mean("ease", 1), mean("popularity", 0)
    margin = sum(r["test"]["neumf"][0] >= max(r["test"]["gmf"][0], r["test"]["mlp"][0]) + 0.01 for r in rows)
    later = sum(r["best_epoch"] > 0 for r in rows)
    need = n - 1 if n >= 5 else n
    verdicts = {
        "NeuMF >= EASE^R (mean HR and NDCG)": hr >= ehr and nd >= end,
        f"NeuMF >= best of GMF/MLP + 0.01 HR in {margin}/{n} seeds": margin >= need,
        f"NeuMF best epoch > 0 in {later}/{n} seeds": later >= need,
        f"NeuMF HR {hr:.4f} >= popularity {pop:.4f} + lift {lift}": hr >= pop + lift,
    }
    print(
        f"\ntargets: NeuMF {hr:.4f} / {nd:.4f}, EASE^R {ehr:.4f} / {end:.4f}; "
        + "; ".join(f"{k}: {'met' if v else 'NOT met'}" for k, v in verdicts.items())
    )
    return verdicts


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--datasets", nargs="+", default=list(FILES), choices=list(FILES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a setting (repeatable), as the CLI's --set; the defaults are what is recorded",
    )
    ap.add_argument("--tune", type=int, default=0, metavar="TRIALS", help="run an ncf_tune study of this many trials")
    ap.add_argument("--tune-minutes", type=float, default=20.0)
    ap.add_argument("--tune-seed", type=int, default=0)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("ncf_tasks.tune").setLevel(logging.INFO)
    with embedded_s3_env() as env:
        settings = Settings.from_env(env=env).replace(**parse_sets(args.set))
        storage = Storage(settings)
        for name in args.datasets:
            events = read_ratings(DATA / name / FILES[name])
            for prefix in ("runs/", "tuning/", "models/", "recs/"):
                storage.delete_prefix(prefix)
            head = f"benchmarks/quality.py — {today()} — {machine()} — {name}"
            sets = f" — {' '.join(args.set)}" if args.set else ""
            rows = run_seeds(settings, storage, events, args.seeds, "q")
            report(f"{head}{sets} — defaults", rows, settings.gate_min_lift)
            if args.tune:
                tune_run = f"tune{args.tune_seed}"
                s = settings.replace(seed=args.tune_seed, tuned_profile=False)
                write_core(storage, tune_run, events, s)
                t0 = time.perf_counter()
                out = run_tune(
                    settings.replace(seed=args.tune_seed),
                    run_id=tune_run,
                    study=f"bench-{name}",
                    trials=args.tune,
                    timeout_s=args.tune_minutes * 60,
                )
                print(
                    f"\nstudy: {out['trials']} trials ({out['complete']} complete, {out['pruned']} pruned) in "
                    f"{time.perf_counter() - t0:.0f} s; best val HR@10 {out['best_value']} (trial 0, the defaults: "
                    f"{out['baseline_value']}); profile {out['settings']}; published: {out['published']}",
                    flush=True,
                )
                if out["published"]:
                    rows = run_seeds(settings, storage, events, args.seeds, "p")
                    report(
                        f"{head}{sets} — tuned profile of a {args.tune}-trial study on seed {args.tune_seed}'s "
                        f"validation split ({storage.get_json(layout.tuned_profile())['settings']})",
                        rows,
                        settings.gate_min_lift,
                    )


if __name__ == "__main__":
    main()
