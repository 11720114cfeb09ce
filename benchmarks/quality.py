"""Model quality on MovieLens 100K through the real pipeline: load-movielens → backfill (ingest, validate) → build → train → evaluate.

    python benchmarks/quality.py [--seeds 0 1 2] [--path ../shared/data/ml-100k/u.data] [--set NAME=VALUE ...]

Test HR@10 / NDCG@10 (99 sampled negatives, leave-one-out, ties counted against the model) of GMF,
MLP, NeuMF with pretraining, NeuMF without pretraining and item popularity; mean ± standard deviation
over the seeds. Epochs are selected on validation HR only; the test items are touched by evaluation alone.
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
from ncf_tasks.evaluate import run_evaluate
from ncf_tasks.movielens import run_load_movielens
from ncf_tasks.storage import Storage
from ncf_tasks.train import run_train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--path", default=str(ROOT.parent / "shared" / "data" / "ml-100k" / "u.data"))
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a setting (repeatable), as the CLI's --set; the defaults are what is recorded")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    results: dict[str, list[tuple[float, float]]] = {}
    with embedded_s3() as settings:
        settings = settings.replace(**parse_sets(args.set))
        loaded = run_load_movielens(settings, path=args.path)
        storage = Storage(settings)
        # the pipeline's own path, as a user's first data set takes it: ingest and validate every day
        backfill = run_backfill(settings, start=loaded["first_day"], end=loaded["last_day"])
        print("backfill:", {k: v for k, v in backfill.items() if k != "quarantined"}, flush=True)
        for seed in args.seeds:
            s = settings.replace(seed=seed)
            run_build(s, run_id=f"q{seed}", end_date=loaded["last_day"])
            val = {model: run_train(s, run_id=f"q{seed}", model=model) for model in ("gmf", "mlp", "neumf")}
            ev = run_evaluate(s, run_id=f"q{seed}")["metrics"]
            for name in ("gmf", "mlp", "neumf", "popularity"):
                label = {"neumf": "NeuMF (pretrained)"}.get(name, name.upper() if name != "popularity" else "item popularity")
                results.setdefault(label, []).append((ev[name]["hr@10"], ev[name]["ndcg@10"]))
            s2 = s.replace(pretrain=False, lr=s.lr)
            storage.delete_prefix(f"runs/q{seed}/neumf")
            run_train(s2, run_id=f"q{seed}", model="neumf")
            ev = run_evaluate(s2, run_id=f"q{seed}")["metrics"]
            results.setdefault("NeuMF (no pretraining)", []).append((ev["neumf"]["hr@10"], ev["neumf"]["ndcg@10"]))
            print(seed, {k: v[-1] for k, v in results.items()}, flush=True)
            print(seed, "validation (what selection sees):",
                  {m: (r["val_hr@10"], r["val_ndcg@10"]) for m, r in val.items()}, flush=True)

    def fmt(xs):
        return f"{statistics.mean(xs):.4f} ± {statistics.pstdev(xs):.4f}"

    rows = [{"model": k, "HR@10": fmt([a for a, _ in v]), "NDCG@10": fmt([b for _, b in v]), "seeds": len(v)}
            for k, v in results.items()]
    sets = f" — {' '.join(args.set)}" if args.set else ""
    print(f"\nbenchmarks/quality.py — {today()} — {machine()} — {Path(args.path).name}{sets}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
