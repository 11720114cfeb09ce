"""Sharded publish against one task: wall time and peak memory per task, through the real stages.

    python benchmarks/publish_shards.py [--sizes 6040x3706 100000x20000] [--shards 4] [--slots 2]

For each size, a real run is made in an embedded S3 endpoint (synthetic events, ``build``, one epoch
of GMF, MLP and NeuMF at the default settings, ``evaluate``), then published twice, each task run as
Airflow 3 runs a task instance (``common.run_tasks``: forked from a worker process that has not imported
torch or polars, ending with ``os._exit``):
  * one task: ``publish.run_publish`` with ``publish_shards=1`` (today's path), torch on all cores;
  * sharded: ``--shards`` ``score_shard`` tasks, ``--slots`` at a time (a LocalExecutor with that
    parallelism, or that many worker slots), torch threads = cores / slots, then one ``commit`` task.
Wall time is from the first task's start to the last one's end (imports of torch and polars, loading
the run's data and model from the bucket included: each mapped task pays them). Peak memory is each
task's ``ru_maxrss`` (imports included: what a worker slot must hold).
"""

from __future__ import annotations

import argparse
import os
import resource
import time

from common import embedded_s3_env, machine, run_tasks, table, today, write_core

from ncf_tasks.config import Settings

DAY = "2026-11-26"


def _make_run(env: dict, users: int, items: int) -> None:
    import polars as pl  # noqa: F401

    from ncf_tasks.evaluate import run_evaluate
    from ncf_tasks.generate import SyntheticSpec, synthesize
    from ncf_tasks.storage import Storage
    from ncf_tasks.train import run_train

    s = Settings.from_env(env=env).replace(epochs=1, gate_min_lift=-1.0, gate_tolerance=1.0)
    ev = synthesize(SyntheticSpec(users=users, items=items, days=1, events_per_day=users * 25, end_date=DAY))
    write_core(Storage(s), "bench", ev, s)
    for m in ("gmf", "mlp", "neumf"):
        run_train(s, run_id="bench", model=m)
    run_evaluate(s, run_id="bench")


def _task(env: dict, what: str, threads: int, shards: int, shard: int = 0, parts: list | None = None) -> dict:
    """One task instance (a forked task process): ``single``, ``shard`` or ``commit``."""
    from ncf_tasks import publish

    s = Settings.from_env(env=env).replace(threads=threads, publish_shards=shards)
    t = time.perf_counter()
    if what == "single":
        out = publish.run_publish(s, run_id="bench", date=DAY)
    elif what == "shard":
        out = publish.score_shard(s, run_id="bench", date=DAY, shard=shard, shards=shards)
    else:
        out = publish.commit(s, run_id="bench", date=DAY, parts=parts)
    return {
        "out": out,
        "seconds": time.perf_counter() - t,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def measure(env: dict, shards: int, slots: int) -> tuple[dict, dict]:
    cores = os.cpu_count() or 1
    (one,), wall = run_tasks([(_task, env, "single", cores, 1)])
    single = {"wall": wall, "peak": one["peak_mb"], "rows": one["out"]["rows"]}
    parts, wall = run_tasks([(_task, env, "shard", max(1, cores // slots), shards, n) for n in range(shards)], slots)
    (done,), commit_wall = run_tasks([(_task, env, "commit", 1, shards, 0, [p["out"] for p in parts])])
    sharded = {
        "wall": wall + commit_wall,
        "peak": max(p["peak_mb"] for p in parts),
        "commit_peak": done["peak_mb"],
        "rows": done["out"]["rows"],
        "shard_s": [round(p["seconds"], 1) for p in parts],
    }
    assert sharded["rows"] == single["rows"], (sharded, single)
    return single, sharded


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["6040x3706", "100000x20000"])
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--slots", type=int, default=2, help="shard tasks running at once")
    args = ap.parse_args()
    rows = []
    for size in args.sizes:
        users, items = map(int, size.split("x"))
        with embedded_s3_env() as env:
            t = time.perf_counter()
            run_tasks([(_make_run, env, users, items)])
            print(f"{size}: run made in {time.perf_counter() - t:.0f}s", flush=True)
            single, sharded = measure(env, args.shards, args.slots)
        rows.append(
            {
                "users x items": f"{users:,} x {items:,}",
                "rows": f"{single['rows']:,}",
                "1 task: wall s": f"{single['wall']:.1f}",
                "1 task: peak MB": f"{single['peak']:.0f}",
                f"{args.shards} shards ({args.slots} at once): wall s": f"{sharded['wall']:.1f}",
                "per shard s": " ".join(map(str, sharded["shard_s"])),
                "peak MB per shard": f"{sharded['peak']:.0f}",
                "commit peak MB": f"{sharded['commit_peak']:.0f}",
            }
        )
        print(rows[-1], flush=True)
    print(f"\nbenchmarks/publish_shards.py — {today()} — {machine()}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
