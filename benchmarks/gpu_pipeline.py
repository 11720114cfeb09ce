"""The model stages' device path end to end, in memory: what must hold before a GPU worker trains tonight.

    python benchmarks/gpu_pipeline.py [--device cuda] [--epochs 3] [--users 6040 --items 3706 --events-per-day 60000]

Synthetic ML-1M-sized logs → ``build_training_set`` → the run's tensors on ``--device`` → GMF and MLP
pretrained, NeuMF fused from them and fine-tuned (``fitting``: the loop ``train`` runs, bf16 autocast and
negative sampling on a GPU) → test HR@10 / NDCG@10 (``metrics``, as ``evaluate``) → every user's top-10 unseen
items (``scoring.top_k``, publish's GPU scorer), and GMF once more through ``DistributedDataParallel`` with
one rank (``distributed``: NCCL on CUDA). Then the checks a CUDA run can break and a CPU run cannot
show: each model's weights moved to the CPU score the test candidates as on the device (bf16 training,
float32 scoring: the same ranking up to float rounding), and the top-10 of the first 1,000 users agrees
with the CPU scorer's on the same weights; the one-rank DDP GMF reaches the plain GMF's validation HR. Object storage is left out (its code does not depend on the
device and the device machine has no S3 endpoint): this is the part that has never run on a GPU.

Prints one line per model and a table; exits 1 if a check fails. ``benchmarks/gpu_check.sh`` runs it on the
device machine; on CPU (``--device cpu``) it is the same code, for trying the script itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch
from common import machine, table, today

from ncf_tasks import distributed
from ncf_tasks.__main__ import parse_sets
from ncf_tasks.build import build_training_set
from ncf_tasks.config import Settings
from ncf_tasks.dev.local_s3 import free_port
from ncf_tasks.fitting import fit, initial_state, make_optimizer, new_model
from ncf_tasks.generate import SyntheticSpec, synthesize
from ncf_tasks.metrics import evaluate_model
from ncf_tasks.rundata import from_frames
from ncf_tasks.sampling import PositiveSet
from ncf_tasks.scoring import top_k

CHECK_USERS = 1000  # users whose top-10 is compared with the CPU scorer's


def on_cpu(kind: str, net: torch.nn.Module, data, settings: Settings) -> torch.nn.Module:
    """A CPU copy of ``net`` (a fresh model of its kind with its weights; ``net`` stays where it is)."""
    twin = new_model(kind, data.n_users, data.n_items, settings.replace(pretrain=False))
    twin.load_state_dict({name: v.detach().cpu() for name, v in net.state_dict().items()})
    return twin.eval()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--epochs", type=int, default=3, help="epochs per model (early stopping as configured)")
    ap.add_argument("--users", type=int, default=6040)
    ap.add_argument("--items", type=int, default=3706)
    ap.add_argument("--events-per-day", type=int, default=60_000, help="x 30 days")
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()
    device = torch.device(args.device)
    settings = Settings.from_env(env={}, **{"epochs": args.epochs, "device": device.type, **parse_sets(args.set)})
    k = settings.eval_k
    t0 = time.perf_counter()
    events = synthesize(
        SyntheticSpec(
            users=args.users, items=args.items, days=30, events_per_day=args.events_per_day, seed=3, duplicate_rate=0
        )
    )
    ts = build_training_set(events, settings)
    data = from_frames({}, ts.users.height, ts.items.height, ts.train, ts.valid, ts.test, device=device)
    pos = PositiveSet(*data.all_positives(), data.n_users, data.n_items, device=device)
    print(
        f"built {data.train_users.numel():,} train positives, {data.n_users:,} users x {data.n_items:,} items "
        f"in {time.perf_counter() - t0:.1f}s; device {device}",
        flush=True,
    )

    def train(kind: str, parts=None, rank=None) -> tuple[torch.nn.Module, dict, float]:
        """One model as ``train`` trains it (seed, optimiser, early stopping), on ``device``; with ``rank``,
        through ``DistributedDataParallel``. Returns the model at its best epoch, the loop's state, seconds."""
        torch.manual_seed(settings.seed)
        net = new_model(kind, data.n_users, data.n_items, settings, parts).to(device)
        opt = make_optimizer(kind, net, settings)
        state = initial_state(net, data, k, kind)
        t = time.perf_counter()
        fit(
            kind,
            net,
            opt,
            data,
            pos,
            settings,
            device,
            state,
            rank=rank,
            train_net=distributed.wrap(net, rank, device) if rank else None,
        )
        if device.type == "cuda":
            torch.cuda.synchronize()
        secs = time.perf_counter() - t
        net.load_state_dict(state["best_state"])
        return net, state, secs

    rows, nets, failed = [], {}, []
    for kind in ("gmf", "mlp", "neumf"):
        net, state, secs = train(kind, (nets["gmf"], nets["mlp"]) if kind == "neumf" else None)
        if kind == "gmf":
            gmf_hr = state["best_hr"]
        net.eval()
        nets[kind] = net
        hr, ndcg = evaluate_model(net, data.test_users, data.test_candidates, k)
        hr_cpu, _ = evaluate_model(
            on_cpu(kind, net, data, settings), data.test_users.cpu(), data.test_candidates.cpu(), k
        )
        sps = [h["samples_per_s"] for h in state["history"]]
        row = {
            "model": kind,
            "epochs (best)": f"{state['epoch']} ({state['best_epoch']})",
            "val HR@10": f"{state['best_hr']:.4f}",
            "test HR@10 / NDCG@10": f"{hr:.4f} / {ndcg:.4f}",
            "test HR@10, weights on CPU": f"{hr_cpu:.4f}",
            "train samples/s": f"{max(sps, default=0):,.0f}",
            "s": f"{secs:.1f}",
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
        if abs(hr - hr_cpu) > 2 / data.test_users.numel():  # one user's hit either way is rounding at a tie
            failed.append(f"{kind}: test HR@10 {hr:.4f} on {device} but {hr_cpu:.4f} with the same weights on the CPU")

    # data-parallel training's own path on this device (NCCL on CUDA) with one rank: the same GMF as above
    os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    me = distributed.init(settings)
    ddp_hr = train("gmf", rank=me)[1]["best_hr"]
    distributed.leave()
    print(
        f"gmf through DistributedDataParallel, 1 rank ({'nccl' if device.type == 'cuda' else 'gloo'}): val HR@10 "
        f"{ddp_hr:.4f} against {gmf_hr:.4f} without",
        flush=True,
    )
    if abs(ddp_hr - gmf_hr) > 2 / data.valid_users.numel():
        failed.append(f"gmf: val HR@10 {ddp_hr:.4f} through DDP with 1 rank but {gmf_hr:.4f} without")

    net = nets["neumf"]
    users = torch.arange(data.n_users, device=device)
    seen = data.seen_before_test()
    t = time.perf_counter()
    items, _scores = top_k(net, users, data.n_items, 10, exclude=seen)
    secs = time.perf_counter() - t
    cpu_net = on_cpu("neumf", net, data, settings)
    m = min(CHECK_USERS, data.n_users)
    cpu_seen = tuple(x.cpu() for x in seen)
    cpu_items, _ = top_k(cpu_net, users[:m].cpu(), data.n_items, 10, exclude=cpu_seen)
    agree = (items[:m].sort(dim=1).values == cpu_items.sort(dim=1).values).all(dim=1).float().mean().item()
    print(
        f"top-10 of {data.n_users:,} users x {data.n_items:,} items on {device}: {secs:.2f}s "
        f"({data.n_users * data.n_items / secs:,.0f} pairs/s); same top-10 as the CPU scorer for {agree:.1%} of "
        f"the first {m:,} users",
        flush=True,
    )
    if agree < 0.99:  # float rounding may swap the 10th and 11th item of a few users, no more
        failed.append(f"top-10 on {device} agrees with the CPU scorer's for only {agree:.1%} of {m} users")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else machine()
    print(
        f"\nbenchmarks/gpu_pipeline.py --device {device} --epochs {args.epochs} — {today()} — {name}, "
        f"torch {torch.__version__}\n"
    )
    print(table(rows))
    for f in failed:
        print("FAILED:", f, file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
