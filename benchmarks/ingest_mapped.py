"""Mapped ingest (file groups, then a commit) against the single ingest task.

    python benchmarks/ingest_mapped.py [--rows 10000000] [--tasks 4] [--slots 4] [--order time|shuffled]
                                       [--sort-rows N]

One synthetic day of ``--rows`` events as 4 raw CSV files in an embedded S3 endpoint: rotated in time, as
collectors write them (``time``), or each file a random quarter of the day (``shuffled``: every pair of
parts overlaps, the commit's worst case). The single task (``ingest.run_ingest``) and the mapped path
(``ingest_mapped``: plan, ``--tasks`` file-group tasks, commit) run each task as Airflow 3 runs one
(``common.run_tasks``), ``--slots`` at a time (a LocalExecutor runs all mapped task instances at once: its
parallelism is 32). Wall time is from the first process's start to the last one's end; a task's memory is
its peak RSS growth after the libraries were imported (as in ``benchmarks/ingest.py``); its CPU seconds are
all its threads', its imports included (on 2 cores, wall time follows the sum of the tasks' CPU).
"""

from __future__ import annotations

import argparse
import os

from common import PeakRSS, embedded_s3_env, machine, run_tasks, table, today
from ingest import DAY, _generate

from ncf_tasks.config import Settings


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _task(env: dict, what: str, kw: dict, sort_rows: int | None = None) -> dict:
    cpu = _cpu()  # the task's own CPU seconds (all its threads), its imports included
    import boto3  # noqa: F401  - libraries loaded before the baseline

    if what in ("single", "group"):  # plan and commit import what they need themselves
        import polars  # noqa: F401
        import pyarrow.parquet  # noqa: F401

    from ncf_tasks import ingest, ingest_mapped
    from ncf_tasks.storage import Storage

    if sort_rows:
        ingest_mapped.SORT_ROWS = sort_rows
    settings = Settings.from_env(env=env)
    Storage(settings).list("raw/")  # client created outside the measurement
    fn = {
        "single": ingest.run_ingest,
        "plan": ingest_mapped.plan_ingest,
        "group": ingest_mapped.ingest_group,
        "commit": ingest_mapped.commit_ingest,
    }[what]
    with PeakRSS() as mem:
        base = mem.peak
        out = fn(settings, date=DAY, **kw)
    return {"out": out, "peak_mb": mem.peak - base, "cpu_s": _cpu() - cpu}


def run(env: dict, what: str, kws: list[dict], slots: int, sort_rows: int | None = None) -> tuple[list[dict], float]:
    return run_tasks([(_task, env, what, kw, sort_rows) for kw in kws], min(slots, len(kws)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--tasks", type=int, default=4, help="file groups (at most the 4 raw files)")
    ap.add_argument("--slots", type=int, default=4, help="mapped tasks at once")
    ap.add_argument("--order", choices=["time", "shuffled"], default="time")
    ap.add_argument(
        "--sort-rows",
        type=int,
        help="rows per sorted range and row group of a group task "
        "(ingest_mapped.SORT_ROWS unless given): the group tasks' memory against their time",
    )
    args = ap.parse_args()
    with embedded_s3_env() as env:
        run_tasks([(_generate, env, args.rows, args.order)])
        (single,), single_wall = run(env, "single", [{}], 1)
        print("single:", single_wall, single["peak_mb"], flush=True)
        (plan,), t_plan = run(env, "plan", [{"groups": args.tasks}], 1)
        tasks = plan["out"]["tasks"]
        grouped, t_group = run(
            env,
            "group",
            [{"group": x["index"], "groups": x["n"], "keys": x["keys"]} for x in tasks],
            args.slots,
            args.sort_rows,
        )
        (done,), t_commit = run(env, "commit", [{"parts": [g["out"] for g in grouped]}], 1)
        mapped_wall = t_plan + t_group + t_commit
        mapped_cpu = plan["cpu_s"] + sum(g["cpu_s"] for g in grouped) + done["cpu_s"]
        print(
            f"mapped: plan {t_plan:.1f}s, file groups {t_group:.1f}s, commit {t_commit:.1f}s "
            f"(parts rewritten: {len(done['out']['parts_rewritten'])})",
            flush=True,
        )
    assert done["out"]["rows_written"] == single["out"]["rows_written"]
    group_cpu = ", ".join(f"{g['cpu_s']:.1f}" for g in grouped)
    rows = [
        {
            "path": "one task (run_ingest)",
            "rows": f"{single['out']['rows_read']:,}",
            "wall s": f"{single_wall:.1f}",
            "task CPU s": f"{single['cpu_s']:.1f}",
            "tasks": 1,
            "peak RSS growth MB per task": f"{single['peak_mb']:.0f}",
            "lake MB": f"{single['out']['bytes'] / 1e6:.0f}",
        },
        {
            "path": f"mapped: plan, {len(tasks)} file groups, commit ({args.slots} at once)",
            "rows": f"{done['out']['rows_read']:,}",
            "wall s": f"{mapped_wall:.1f}",
            "task CPU s": f"{mapped_cpu:.1f} (groups {group_cpu})",
            "tasks": 2 + len(tasks),
            "peak RSS growth MB per task": f"groups {max(g['peak_mb'] for g in grouped):.0f}, "
            f"plan {plan['peak_mb']:.0f}, commit {done['peak_mb']:.0f}",
            "lake MB": f"{done['out']['bytes'] / 1e6:.0f}",
        },
    ]
    sort_rows = f" --sort-rows {args.sort_rows}" if args.sort_rows else ""
    print(
        f"\nbenchmarks/ingest_mapped.py --rows {args.rows} --tasks {args.tasks} --slots {args.slots} --order "
        f"{args.order}{sort_rows} — {today()} — {machine()}\n"
    )
    print(table(rows))


if __name__ == "__main__":
    main()
