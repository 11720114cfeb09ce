"""Our trainer against the peers a user would pick instead — cornac's and RecBole's NeuMF — at equal split and batch.

    make peers   # once: each peer's own venv (the Makefile holds their pins), then this with both peers
    python benchmarks/peers.py [--seeds 0 1 2] [--peers cornac recbole] [--path ../shared/data/ml-100k/u.data]

Per seed: the pipeline's training set of MovieLens 100K (``build.build_training_set``: leave-one-out, 99
sampled negatives), then GMF, MLP and NeuMF (pretrained) trained by our epoch loop (``fitting.fit``: selection
with early stopping and the best epoch kept, no refit, as the peers' fits have none; defaults,
early stopping on validation HR@10; factors 8 by default, the paper's configuration, because cornac's NeuMF
requires GMF's factors to equal the last MLP layer) — twice: as shipped, and with ``recency_boost=0``, the
model the peers can also express — and by each peer in its own venv (``peer_cornac.py``: cornac 3.0.1, PyTorch
backend; ``peer_recbole.py``: RecBole 1.2.1) on the same train/validation pairs, at the same factors, MLP
layers, negatives, learning rates and batch size (cornac's batch counts positives: ours // (1 + negatives);
RecBole's counts samples, as ours). All are scored on the same test candidates, by the same metric code
(``metrics``: ties against the model). Training seconds are the whole fit, per-epoch validation included
(ours and RecBole rank 100 candidates per user, cornac ranks the whole catalogue for its NDCG@100), data
loading excluded; samples/s counts positives and negatives of the epochs run over those seconds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import ROOT, machine, table, today

from ncf_tasks.__main__ import parse_sets
from ncf_tasks.build import build_training_set
from ncf_tasks.config import Settings
from ncf_tasks.fitting import batch_size_for, fit, initial_state, make_optimizer, new_model
from ncf_tasks.metrics import evaluate_model, held_out_rank, hit_ndcg
from ncf_tasks.movielens import read_ratings
from ncf_tasks.rundata import from_frames
from ncf_tasks.sampling import PositiveSet

KINDS = ("gmf", "mlp", "neumf")


def ours(s: Settings, data, pos) -> dict:
    parts, out = {}, {}
    for kind in KINDS:
        torch.manual_seed(s.seed)
        net = new_model(kind, data.n_users, data.n_items, s, (parts["gmf"], parts["mlp"]) if kind == "neumf" else None)
        state = initial_state(net, data, s.eval_k, kind)
        t = time.perf_counter()
        fit(kind, net, make_optimizer(kind, net, s), data, pos, s, torch.device("cpu"), state)
        seconds = time.perf_counter() - t
        net.load_state_dict(state["best_state"])
        parts[kind] = net.eval()
        hr, nd = evaluate_model(net, data.test_users, data.test_candidates, s.eval_k)
        samples = state["epoch"] * data.train_users.numel() * (1 + s.train_negatives)
        out[kind] = {
            "hr": hr,
            "ndcg": nd,
            "epochs": state["epoch"],
            "seconds": seconds,
            "samples_per_s": samples / seconds,
        }
    return out


def peer(script: str, python: str, s: Settings, data, batch_args: list[str]) -> dict:
    """Run a peer's script (``peer_cornac.py``, ``peer_recbole.py``) in its own venv on this split; its test
    candidates' scores come back and are scored here, by the pipeline's metric code."""
    with tempfile.TemporaryDirectory() as tmp:
        split, result = Path(tmp, "split.npz"), Path(tmp, "out.npz")
        np.savez(
            split,
            n_items=data.n_items,
            train_users=data.train_users.numpy(),
            train_items=data.train_items.numpy(),
            valid_users=data.valid_users.numpy(),
            valid_items=data.valid_candidates[:, 0].numpy(),
            test_users=data.test_users.numpy(),
            test_candidates=data.test_candidates.numpy(),
        )
        cmd = [
            python,
            str(ROOT / "benchmarks" / script),
            str(split),
            str(result),
            *batch_args,
            "--factors",
            str(s.factors),
            "--layers",
            *map(str, s.mlp_layers),
            "--negatives",
            str(s.train_negatives),
            "--lr",
            str(s.lr),
            "--neumf-lr",
            str(s.neumf_lr),
            "--epochs",
            str(s.epochs),
            "--patience",
            str(s.patience),
            "--seed",
            str(s.seed),
            "--threads",
            str(s.threads or 2),
        ]
        subprocess.run(cmd, check=True, cwd=tmp)  # RecBole writes its logs into the working folder
        z = np.load(result)
        out = {}
        for kind in KINDS:
            hr, nd = hit_ndcg(held_out_rank(torch.from_numpy(z[f"{kind}_scores"])), s.eval_k)
            seconds = float(z[f"{kind}_seconds"])
            out[kind] = {
                "hr": hr,
                "ndcg": nd,
                "epochs": int(z[f"{kind}_epochs"]),
                "seconds": seconds,
                "samples_per_s": float(z[f"{kind}_samples"]) / seconds,
            }
        return out


PEERS = {  # name -> (script, default venv python, how its batch is given: cornac counts positives)
    "cornac 3.0.1": ("peer_cornac.py", ".peers", lambda s, b: ["--batch-positives", str(b // (1 + s.train_negatives))]),
    "RecBole 1.2.1": ("peer_recbole.py", ".peers-recbole", lambda s, b: ["--batch", str(b)]),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--path", default=str(ROOT.parent / "shared" / "data" / "ml-100k" / "u.data"))
    ap.add_argument(
        "--peers",
        nargs="+",
        choices=[n.split()[0].lower() for n in PEERS],
        default=["cornac"],
        help="peer trainers, each from its own venv (.peers for cornac, .peers-recbole for RecBole)",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="settings of both trainers (default factors=8: cornac's NeuMF ties GMF's factors to the last "
        "MLP layer, so the paper's configuration is the one both can run)",
    )
    args = ap.parse_args()
    peers = {n: v for n, v in PEERS.items() if n.split()[0].lower() in args.peers}
    for _script, venv, _ in peers.values():
        if not (ROOT / venv / "bin" / "python").exists():
            sys.exit(f"{ROOT / venv}: no peer venv; create the peers' venvs with: make peers")
    base = Settings.from_env(env={}, **parse_sets(args.set or ["factors=8"]))
    if "cornac 3.0.1" in peers and base.factors != base.mlp_layers[-1]:
        sys.exit(
            f"cornac's NeuMF needs factors == the last MLP layer ({base.mlp_layers[-1]}); got factors {base.factors}"
        )
    torch.set_num_threads(base.threads or 2)
    events = read_ratings(args.path)
    rows = []
    for seed in args.seeds:
        s = base.replace(seed=seed)
        ts = build_training_set(events, s)
        data = from_frames(None, ts.users.height, ts.items.height, ts.train, ts.valid, ts.test)
        pos = PositiveSet(*data.all_positives(), data.n_users, data.n_items)
        batch = batch_size_for(s, data.train_users.numel())
        # ours twice: as shipped, and without the recency boost, which the peers have no equivalent of
        runs = [("ours", lambda: ours(s, data, pos))]
        if s.recency_boost:
            runs.append(("ours, recency_boost=0", lambda: ours(s.replace(recency_boost=0.0), data, pos)))
        runs += [
            (name, lambda v=v: peer(v[0], str(ROOT / v[1] / "bin" / "python"), s, data, v[2](s, batch)))
            for name, v in peers.items()
        ]
        for name, run in runs:
            for kind, r in run().items():
                rows.append({"seed": seed, "trainer": name, "model": kind, **r})
                print(rows[-1], flush=True)
    print(
        f"\nbenchmarks/peers.py — {today()} — {machine()} — {Path(args.path).name}, seeds {args.seeds}, batch "
        f"{batch} samples; {' '.join(args.set) or 'defaults'}\n"
    )
    summary = []
    for name in dict.fromkeys(r["trainer"] for r in rows):
        for kind in KINDS:
            rs = [r for r in rows if r["trainer"] == name and r["model"] == kind]
            summary.append(
                {
                    "trainer": name,
                    "model": kind,
                    "test HR@10": f"{statistics.mean(r['hr'] for r in rs):.4f} ± {statistics.pstdev(r['hr'] for r in rs):.4f}",
                    "test NDCG@10": f"{statistics.mean(r['ndcg'] for r in rs):.4f}",
                    "epochs": "/".join(str(r["epochs"]) for r in rs),
                    "train s": f"{statistics.mean(r['seconds'] for r in rs):.1f}",
                    "samples/s": f"{statistics.mean(r['samples_per_s'] for r in rs):,.0f}",
                }
            )
    print(table(summary))


if __name__ == "__main__":
    main()
