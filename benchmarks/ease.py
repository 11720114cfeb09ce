"""EASE^R at ML-1M size: the λ search on validation, the refit, and scoring of every validation and test user.

    python benchmarks/ease.py [--users 6040] [--items 3706] [--events-per-day 35000]

A 1M-interaction synthetic set (the size of ML-1M: 6,040 users x 3,706 items, as ``benchmarks/train.py``),
then, in the same run:

* ours: ``baselines.fit_ease`` (torch, float64 Cholesky inverse per λ, sparse scoring of the validation
  candidates, refit on train + validation), then the test users' candidates and every test user's full
  catalogue (what evaluate scores), with the default settings' λ range and recency weights;
* the 20-line numpy EASE^R a user would write first: ``np.linalg.inv`` per λ over the same λ values and a
  dense X·B for the validation users, no refit.

Target (issue 31): ours ≤ 30 s on 2 cores for the whole of it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from common import machine, table, today

from ncf_tasks.baselines import fit_ease
from ncf_tasks.build import build_training_set
from ncf_tasks.config import Settings
from ncf_tasks.fitting import recency_weights
from ncf_tasks.generate import SyntheticSpec, synthesize
from ncf_tasks.metrics import held_out_rank, hit_ndcg, score_candidates
from ncf_tasks.rundata import from_frames


def numpy_ease(data, lambdas: list[float], k: int) -> tuple[float, float]:
    """The straightforward version: dense X, np.linalg.inv per λ, dense scores of the validation users."""
    x = np.zeros((data.n_users, data.n_items), np.float64)
    x[data.train_users.cpu().numpy(), data.train_items.cpu().numpy()] = 1.0
    g = x.T @ x
    best = (-1.0, None)
    xv = x[data.valid_users.cpu().numpy()]
    cands = data.valid_candidates.cpu().numpy()
    for lam in lambdas:
        p = np.linalg.inv(g + lam * np.eye(data.n_items))
        b = -p / np.diag(p)
        np.fill_diagonal(b, 0.0)
        s = np.take_along_axis(xv @ b, cands, 1)
        hr, _ = hit_ndcg(held_out_rank(torch.from_numpy(s)), k)
        best = max(best, (hr, lam))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=6040)
    ap.add_argument("--items", type=int, default=3706)
    ap.add_argument("--events-per-day", type=int, default=35000)
    ap.add_argument("--device", default="cpu", help="where ours runs (cuda on a GPU worker); numpy's on the CPU")
    ap.add_argument("--no-numpy", action="store_true", help="time ours alone")
    args = ap.parse_args()
    torch.set_num_threads(2)
    settings = Settings.from_env(env={})
    ev = synthesize(
        SyntheticSpec(users=args.users, items=args.items, days=30, events_per_day=args.events_per_day, seed=3)
    )
    ts = build_training_set(ev, settings)
    data = from_frames(None, ts.users.height, ts.items.height, ts.train, ts.valid, ts.test, device=args.device)
    k = settings.eval_k
    t0 = time.perf_counter()
    model, info = fit_ease(
        data,
        k,
        settings.ease_lambda_min,
        settings.ease_lambda_max,
        settings.refit,
        lambda d: recency_weights(d, settings),
    )
    fit_s = time.perf_counter() - t0
    t = time.perf_counter()
    hr, ndcg = hit_ndcg(held_out_rank(score_candidates(model, data.test_users, data.test_candidates)), k)
    full = model.score_all(data.test_users, torch.arange(data.n_items, device=args.device)).topk(k, dim=1)
    if args.device == "cuda":
        torch.cuda.synchronize()
    score_s = time.perf_counter() - t
    ours = time.perf_counter() - t0
    lambdas = [r["lambda"] for r in info["tried"]]
    t = time.perf_counter()
    np_hr, np_lam = (float("nan"), float("nan")) if args.no_numpy else numpy_ease(data, lambdas, k)
    numpy_s = time.perf_counter() - t
    print(f"benchmarks/ease.py — {today()} — {machine()}\n")
    print(
        f"set: {data.n_users:,} users x {data.n_items:,} items, {data.train_users.numel():,} train positives; "
        f"λ tried {[f'{x:.3g}' for x in lambdas]}\n"
    )
    print(
        table(
            [
                {
                    "EASE^R": f"ours on {args.device} (baselines.fit_ease: search + refit; test candidates + full catalogue)",
                    "seconds": f"{ours:.1f} (fit {fit_s:.1f}, scoring {score_s:.1f})",
                    "λ": f"{info['lambda']:.3g}",
                    "val HR@10": info["validation"][f"val_hr@{k}"],
                    "test HR@10 / NDCG@10": f"{hr:.4f} / {ndcg:.4f}",
                    "target ≤ 30 s": "met" if ours <= 30 else "NOT met",
                },
                {
                    "EASE^R": "numpy, np.linalg.inv per λ, dense validation scores (no refit, no test)",
                    "seconds": f"{numpy_s:.1f}",
                    "λ": f"{np_lam:.3g}",
                    "val HR@10": round(np_hr, 5),
                    "test HR@10 / NDCG@10": "–",
                    "target ≤ 30 s": "–",
                },
            ]
        )
    )
    del full


if __name__ == "__main__":
    main()
