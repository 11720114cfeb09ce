"""Training speed of NeuMF (factors 8, layers [64,32,16,8], 4 negatives) on a 1M-interaction set
(ML-1M sized: 6,040 users x 3,706 items), against a straightforward PyTorch port of the paper's loop.

    python benchmarks/train.py [--port-samples 500000]

Ours: ``train.train_epoch`` with the default settings (epoch as device tensors, a permutation of the
positives, index slices, automatic batch size — 16,384 here — Adam as ``train.make_optimizer`` builds it).
Port: a per-sample ``Dataset`` + ``DataLoader`` (batch 256, shuffle) over the same epoch's samples; it
is timed on its first ``--port-samples`` samples and reported as samples/s. Both then report validation
HR@10 after the same number of epochs (1). ``--epochs N`` times N epochs of ours and reports each.
GPU figure (issue: 20M interactions): ``--device cuda --no-port --users 140000 --items 27000 --events-per-day
850000`` (25.5M events, 20.2M train positives after de-duplication and the held-out splits; ``gpu_check.sh``).
"""

from __future__ import annotations

import argparse
import time

import torch
from common import machine, table, today
from torch.utils.data import DataLoader, Dataset

from ncf_tasks.__main__ import parse_sets
from ncf_tasks.build import build_training_set
from ncf_tasks.config import Settings
from ncf_tasks.fitting import batch_size_for, make_optimizer, train_epoch
from ncf_tasks.generate import SyntheticSpec, synthesize
from ncf_tasks.metrics import evaluate_model
from ncf_tasks.models import NeuMF
from ncf_tasks.rundata import from_frames
from ncf_tasks.sampling import PositiveSet, train_negatives


class PairDataset(Dataset):
    def __init__(self, users, items, labels):
        self.users, self.items, self.labels = users, items, labels

    def __len__(self):
        return len(self.users)

    def __getitem__(self, i):
        return self.users[i], self.items[i], self.labels[i]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port-samples", type=int, default=500_000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cuda for the GPU figure (the port is then skipped)")
    ap.add_argument("--users", type=int, default=6040)
    ap.add_argument("--items", type=int, default=3706)
    ap.add_argument(
        "--events-per-day",
        type=int,
        default=60_000,
        help="x 30 days: 850000 (with 140000 users, 27000 items) gives 20.2M train positives",
    )
    ap.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE", help="a setting for our loop (e.g. l2=0.001)"
    )
    ap.add_argument("--no-port", action="store_true", help="time our loop only")
    args = ap.parse_args()
    device = torch.device(args.device)
    settings = Settings.from_env(env={}, **parse_sets(args.set))
    torch.set_num_threads(2)
    ev = synthesize(
        SyntheticSpec(
            users=args.users, items=args.items, days=30, events_per_day=args.events_per_day, seed=3, duplicate_rate=0
        )
    )
    ts = build_training_set(ev, settings)
    data = from_frames({}, ts.users.height, ts.items.height, ts.train, ts.valid, ts.test, device=device)
    pos = PositiveSet(*data.all_positives(), data.n_users, data.n_items, device=device)
    rows = []

    torch.manual_seed(0)
    model = NeuMF(data.n_users, data.n_items, 8, (64, 32, 16, 8)).to(device)
    opt = make_optimizer("gmf", model, settings)  # Adam, as for pretraining (NeuMF without pretraining)
    batch = batch_size_for(settings, data.train_users.numel())
    epoch_secs, hr1 = [], None
    for epoch in range(1, args.epochs + 1):
        t = time.perf_counter()
        _, samples = train_epoch(model, opt, data, pos, settings, torch.Generator(device).manual_seed(epoch), device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        epoch_secs.append(time.perf_counter() - t)
        if epoch == 1:
            hr1, _ = evaluate_model(model, data.valid_users, data.valid_candidates, 10)
        print(f"epoch {epoch}: {epoch_secs[-1]:.2f} s, {samples / epoch_secs[-1]:,.0f} samples/s", flush=True)
    secs = sorted(epoch_secs)[len(epoch_secs) // 2]  # median epoch
    ours = samples / secs
    how = "auto batch" if not settings.batch_size else "batch"
    rows.append(
        {
            "loop": f"ours (tensor slices, {how} {batch:,}), median of {args.epochs} epochs",
            "samples/epoch": f"{samples:,}",
            "s/epoch": f"{secs:.2f} (min {min(epoch_secs):.2f}, max {max(epoch_secs):.2f})",
            "samples/s": f"{ours:,.0f}",
            "val HR@10 after 1 epoch": f"{hr1:.4f}",
        }
    )

    if args.no_port:
        print(f"\nbenchmarks/train.py — {today()} — {machine()}, torch {torch.__version__} — {' '.join(args.set)}\n")
        print(table(rows))
        return
    if device.type != "cpu":
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)
        print(f"\nbenchmarks/train.py — {today()} — {name}, torch {torch.__version__}; port skipped\n")
        print(table(rows))
        return
    torch.manual_seed(0)
    model = NeuMF(data.n_users, data.n_items, 8, (64, 32, 16, 8))
    opt = torch.optim.Adam(model.parameters(), lr=0.001)
    k = 4
    neg = train_negatives(pos, data.train_users, k, torch.Generator().manual_seed(1)).view(-1)
    users = torch.cat([data.train_users, data.train_users.repeat_interleave(k)])
    items = torch.cat([data.train_items, neg])
    labels = torch.cat([torch.ones(data.train_users.numel()), torch.zeros(neg.numel())])
    loader = DataLoader(PairDataset(users, items, labels), batch_size=256, shuffle=True)
    seen, t = 0, time.perf_counter()
    timed = None
    for u, i, y in loader:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(u, i), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seen += len(u)
        if timed is None and seen >= args.port_samples:
            timed = (seen, time.perf_counter() - t)
    port = timed[0] / timed[1]
    total = time.perf_counter() - t
    hr, _ = evaluate_model(model, data.valid_users, data.valid_candidates, 10)
    rows.append(
        {
            "loop": "straightforward port (Dataset + DataLoader, batch 256)",
            "samples/epoch": f"{seen:,}",
            "s/epoch": f"{total:.1f}",
            "samples/s": f"{port:,.0f}",
            "val HR@10 after 1 epoch": f"{hr:.4f}",
        }
    )
    print(
        f"\nbenchmarks/train.py — {today()} — {machine()}, torch {torch.__version__}, 2 threads; speed-up {ours / port:.1f}x\n"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
