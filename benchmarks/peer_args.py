"""The command line every peer script (``peer_cornac.py``, ``peer_recbole.py``) takes from ``peers.py``.

Imports nothing but argparse: the peers run in venvs of their own, without ``ncf_tasks``.
"""

from __future__ import annotations

import argparse


def parse(batch_flag: str, batch_help: str, neumf_lr: float) -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("split")
    ap.add_argument("out")
    ap.add_argument(batch_flag, type=int, required=True, help=batch_help)
    ap.add_argument("--factors", type=int, default=64)
    ap.add_argument("--layers", type=int, nargs="+", default=[64, 32, 16, 8])
    ap.add_argument("--negatives", type=int, default=4)
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--neumf-lr", type=float, default=neumf_lr)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--patience", type=int, default=6)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    return ap.parse_args()
