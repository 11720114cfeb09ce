"""A nightly run's training at ML-1M size, task by task: GMF, MLP, EASE^R (where the code has it), NeuMF.

    python benchmarks/nightly_train.py [--seed 0] [--set NAME=VALUE ...]

The set is ``finetune.py``'s ``ml-1m-sized`` (``benchmarks/train.py``'s synthetic set: 6,040 users x 3,706 items,
1.8M events over 30 days), built once with build's core; then ``run_train`` per model with the defaults (early
stopping on validation, the refit on train + validation), as the DAG's training tasks run them, one after the
other. Printed per model: seconds, epochs, best epoch, validation HR@10. Issue 31's check ("nightly training
time at ML-1M size no worse than today's"): run it in this checkout and, with ``PYTHONPATH`` pointing at a
worktree of the code before (``git worktree add /tmp/base <commit>``), in that one, back to back.
"""

from __future__ import annotations

import argparse
import logging
import time

from common import embedded_s3_env, machine, table, today, write_core
from finetune import SYNTHETIC, events_of

import ncf_tasks
from ncf_tasks.__main__ import parse_sets
from ncf_tasks.config import Settings
from ncf_tasks.errors import ConfigError
from ncf_tasks.storage import Storage
from ncf_tasks.train import run_train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    with embedded_s3_env("nightly-train") as env:
        s = Settings.from_env(env=env).replace(seed=args.seed, **parse_sets(args.set))
        storage = Storage(s)
        t0 = time.perf_counter()
        write_core(storage, "nightly", events_of(SYNTHETIC), s)
        print(f"built in {time.perf_counter() - t0:.1f} s", flush=True)
        for model in ("gmf", "mlp", "ease", "neumf"):
            t0 = time.perf_counter()
            try:
                r = run_train(s, run_id="nightly", model=model)
            except ConfigError as e:  # the code before issue 31 has no EASE^R
                print(f"{model}: {e}", flush=True)
                continue
            rows.append(
                {
                    "model": model,
                    "s": round(time.perf_counter() - t0, 1),
                    "epochs": r.get("epochs", "–"),
                    "best epoch": r.get("best_epoch", "–"),
                    "val HR@10": r.get("val_hr@10", "–"),
                }
            )
            print(rows[-1], flush=True)
    rows.append({**dict.fromkeys(rows[0], ""), "model": "total", "s": round(sum(r["s"] for r in rows), 1)})
    print(f"\n{today()}, {machine()}; code {ncf_tasks.__file__}; settings {args.set or 'defaults'}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
