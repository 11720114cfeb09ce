"""Model quality on MovieLens 100K through the real pipeline: load-movielens → backfill (ingest, validate) → build → train → evaluate.

    python benchmarks/quality.py [--seeds 0 1 2 3 4] [--path ../shared/data/ml-100k/u.data] [--set NAME=VALUE ...]
                                 [--tune TRIALS [--tune-minutes 20] [--tune-seed 0]] [--no-plain] [--data-dir DIR]

Test HR@10 / NDCG@10 (99 sampled negatives, leave-one-out, ties counted against the model) of GMF,
MLP, NeuMF with pretraining, NeuMF without pretraining (skipped by ``--no-plain``) and item popularity;
mean ± standard deviation over the seeds, and per seed NeuMF's fused start and best epoch on validation.
Epochs are selected on validation HR only; the test items are touched by evaluation alone.

``--tune N``: first an ``ncf_tune`` study of N trials on the training set of ``--tune-seed`` (validation only),
then every seed twice: with the defaults, and with the study's tuned profile (as a nightly run picks it up).
The issue 15 targets are checked for each configuration and printed.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from pathlib import Path

from common import ROOT, embedded_s3_env, machine, table, today

from ncf_tasks import layout
from ncf_tasks.__main__ import parse_sets
from ncf_tasks.backfill import run_backfill
from ncf_tasks.build import run_build
from ncf_tasks.config import Settings
from ncf_tasks.evaluate import run_evaluate
from ncf_tasks.movielens import run_load_movielens
from ncf_tasks.storage import Storage
from ncf_tasks.train import run_train
from ncf_tasks.tune import run_tune

LOADED = "benchmarks/quality_loaded.json"  # what --data-dir's bucket holds already
LABELS = {"gmf": "GMF", "mlp": "MLP", "neumf": "NeuMF (pretrained)", "popularity": "item popularity"}


def evaluate_seeds(settings, storage, seeds, last_day, tag, plain) -> tuple[dict, list[dict]]:
    results: dict[str, list[tuple[float, float]]] = {}
    per_seed = []
    for seed in seeds:
        s = settings.replace(seed=seed)
        rid = f"{tag}{seed}"
        t0 = time.perf_counter()
        built = run_build(s, run_id=rid, end_date=last_day)
        val = {model: run_train(s, run_id=rid, model=model) for model in ("gmf", "mlp", "neumf")}
        ev = run_evaluate(s, run_id=rid)["metrics"]
        for name, label in LABELS.items():
            results.setdefault(label, []).append((ev[name]["hr@10"], ev[name]["ndcg@10"]))
        n = val["neumf"]
        per_seed.append(
            {
                "seed": seed,
                "profile": built.get("profile"),
                "test": (ev["neumf"]["hr@10"], ev["neumf"]["ndcg@10"]),
                "best_other": max(ev["gmf"]["hr@10"], ev["mlp"]["hr@10"]),
                "fused_start_val": (n["start_val_hr"], n["start_val_ndcg@10"]),
                "best_val": (n["val_hr@10"], n["val_ndcg@10"]),
                "best_epoch": n["best_epoch"],
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        if plain:
            s2 = s.replace(pretrain=False)
            storage.delete_prefix(f"runs/{rid}/neumf")
            run_train(s2, run_id=rid, model="neumf")
            ev = run_evaluate(s2, run_id=rid)["metrics"]
            results.setdefault("NeuMF (no pretraining)", []).append((ev["neumf"]["hr@10"], ev["neumf"]["ndcg@10"]))
        print(tag, per_seed[-1], flush=True)
    return results, per_seed


def report(title: str, results: dict, per_seed: list[dict]) -> None:
    def fmt(xs):
        return f"{statistics.mean(xs):.4f} ± {statistics.pstdev(xs):.4f}"

    print(f"\n{title}\n")
    print(
        table(
            [
                {"model": k, "HR@10": fmt([a for a, _ in v]), "NDCG@10": fmt([b for _, b in v]), "seeds": len(v)}
                for k, v in results.items()
            ]
        )
    )
    print()
    print(
        table(
            [
                {
                    "seed": p["seed"],
                    "NeuMF test HR / NDCG": f"{p['test'][0]:.4f} / {p['test'][1]:.4f}",
                    "best of GMF, MLP (test HR)": f"{p['best_other']:.4f}",
                    "fused start (val HR / NDCG)": f"{p['fused_start_val'][0]:.4f} / {p['fused_start_val'][1]:.4f}",
                    "best epoch (val HR / NDCG)": f"{p['best_epoch']}: {p['best_val'][0]:.4f} / {p['best_val'][1]:.4f}",
                    "seconds": p["seconds"],
                }
                for p in per_seed
            ]
        )
    )
    hr = statistics.mean(p["test"][0] for p in per_seed)
    nd = statistics.mean(p["test"][1] for p in per_seed)
    margin = sum(p["test"][0] >= p["best_other"] + 0.01 for p in per_seed)
    later = sum(p["best_epoch"] > 0 for p in per_seed)
    n = len(per_seed)
    print(
        f"\ntargets: mean HR@10 {hr:.4f} (>= 0.70: {'met' if hr >= 0.70 else 'NOT met'}), mean NDCG@10 {nd:.4f} "
        f"(>= 0.42: {'met' if nd >= 0.42 else 'NOT met'}), NeuMF >= best of GMF/MLP + 0.01 HR in {margin}/{n} seeds "
        f"({'met' if margin == n else 'NOT met'}), best epoch > 0 in {later}/{n} seeds "
        f"({'met' if later >= n - 1 else 'NOT met'})"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--path", default=str(ROOT.parent / "shared" / "data" / "ml-100k" / "u.data"))
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
    ap.add_argument("--no-plain", action="store_true", help="skip NeuMF without pretraining")
    ap.add_argument(
        "--data-dir",
        help="keep the endpoint's bucket in this folder: a later run with the same folder "
        "reuses the loaded and backfilled lake (runs and tuning are cleared each time)",
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("ncf_tasks.tune").setLevel(logging.INFO)
    with embedded_s3_env(data_dir=args.data_dir) as env:
        settings = Settings.from_env(env=env).replace(**parse_sets(args.set))
        storage = Storage(settings)
        loaded = storage.get_json(LOADED, default=None)
        if loaded is None or loaded["path"] != str(Path(args.path).resolve()):
            loaded = run_load_movielens(settings, path=args.path)
            # the pipeline's own path, as a user's first data set takes it: ingest and validate every day
            backfill = run_backfill(settings, start=loaded["first_day"], end=loaded["last_day"])
            print("backfill:", {k: v for k, v in backfill.items() if k != "quarantined"}, flush=True)
            loaded = {
                "path": str(Path(args.path).resolve()),
                "first_day": str(loaded["first_day"]),
                "last_day": str(loaded["last_day"]),
            }
            storage.put_json(LOADED, loaded)
        else:
            print(f"reusing the lake of {loaded['path']} in {args.data_dir}", flush=True)
        for prefix in ("runs/", "tuning/", "models/"):  # a kept bucket's earlier runs would resume, not train
            storage.delete_prefix(prefix)
        head = f"benchmarks/quality.py — {today()} — {machine()} — {Path(args.path).name}"
        sets = f" — {' '.join(args.set)}" if args.set else ""
        results, per_seed = evaluate_seeds(settings, storage, args.seeds, loaded["last_day"], "q", not args.no_plain)
        report(f"{head}{sets} — defaults", results, per_seed)
        if args.tune:
            tune_run = f"tune{args.tune_seed}"
            run_build(
                settings.replace(seed=args.tune_seed, tuned_profile=False), run_id=tune_run, end_date=loaded["last_day"]
            )
            t0 = time.perf_counter()
            out = run_tune(
                settings.replace(seed=args.tune_seed),
                run_id=tune_run,
                study="bench",
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
                results, per_seed = evaluate_seeds(settings, storage, args.seeds, loaded["last_day"], "p", False)
                report(
                    f"{head}{sets} — tuned profile of a {args.tune}-trial study on seed {args.tune_seed}'s validation "
                    f"split ({storage.get_json(layout.tuned_profile())['settings']})",
                    results,
                    per_seed,
                )


if __name__ == "__main__":
    main()
