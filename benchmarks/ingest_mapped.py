"""Mapped ingest (file groups, then hour ranges, then a commit) against the single ingest task.

    python benchmarks/ingest_mapped.py [--rows 10000000] [--tasks 4] [--slots 4]

One synthetic day of ``--rows`` events as 4 raw CSV files in an embedded S3 endpoint. The single task
(``ingest.run_ingest``) and the mapped path (``ingest_mapped``: plan, ``--tasks`` file-group tasks, as many
hour-range tasks, commit) run each task in a fresh process, ``--slots`` at a time (a
LocalExecutor runs all mapped task instances at once: its parallelism is 32). Wall time is from the first
process's start to the last one's end; a task's memory is its peak RSS growth after the libraries were
imported (as in ``benchmarks/ingest.py``).
"""

from __future__ import annotations

import argparse

from common import PeakRSS, embedded_s3_env, machine, run_tasks, table, today
from ingest import DAY, _generate

from ncf_tasks.config import Settings


def _task(env: dict, what: str, kw: dict) -> dict:
    import boto3  # noqa: F401  - libraries loaded before the baseline
    import polars  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    from ncf_tasks import ingest, ingest_mapped
    from ncf_tasks.storage import Storage

    settings = Settings.from_env(env=env)
    Storage(settings).list("raw/")  # client created outside the measurement
    fn = {"single": ingest.run_ingest, "plan": ingest_mapped.plan_ingest, "stage": ingest_mapped.stage_files,
          "merge": ingest_mapped.merge_range, "commit": ingest_mapped.commit_ingest}[what]
    with PeakRSS() as mem:
        base = mem.peak
        out = fn(settings, date=DAY, **kw)
    return {"out": out, "peak_mb": mem.peak - base}


def run(env: dict, what: str, kws: list[dict], slots: int) -> tuple[list[dict], float]:
    return run_tasks([(_task, env, what, kw) for kw in kws], min(slots, len(kws)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--tasks", type=int, default=4, help="file groups and hour ranges (at most the 4 raw files)")
    ap.add_argument("--slots", type=int, default=4, help="mapped tasks at once")
    args = ap.parse_args()
    with embedded_s3_env() as env:
        run_tasks([(_generate, env, args.rows, "time")])
        (single,), single_wall = run(env, "single", [{}], 1)
        print("single:", single_wall, single["peak_mb"], flush=True)
        (plan,), t_plan = run(env, "plan", [{"ranges": args.tasks}], 1)
        tasks = plan["out"]["tasks"]
        staged, t_stage = run(env, "stage", [{"group": x["index"], "ranges": x["n"], "keys": x["keys"]} for x in tasks],
                              args.slots)
        merged, t_merge = run(env, "merge", [{"rng": x["index"], "ranges": x["n"], "groups": x["n"]} for x in tasks],
                              args.slots)
        (done,), t_commit = run(env, "commit", [{"parts": [m["out"] for m in merged]}], 1)
        mapped_wall = t_plan + t_stage + t_merge + t_commit
        print(f"mapped: plan {t_plan:.1f}s, file groups {t_stage:.1f}s, hour ranges {t_merge:.1f}s, "
              f"commit {t_commit:.1f}s", flush=True)
    assert done["out"]["rows_written"] == single["out"]["rows_written"]
    rows = [{"path": "one task (run_ingest)", "rows": f"{single['out']['rows_read']:,}", "wall s": f"{single_wall:.1f}",
             "tasks": 1, "peak RSS growth MB per task": f"{single['peak_mb']:.0f}"},
            {"path": f"mapped: plan, {len(tasks)} file groups, {len(tasks)} hour ranges, commit ({args.slots} at once)",
             "rows": f"{done['out']['rows_read']:,}", "wall s": f"{mapped_wall:.1f}", "tasks": 2 + 2 * len(tasks),
             "peak RSS growth MB per task":
                 f"files {max(s['peak_mb'] for s in staged):.0f}, ranges {max(m['peak_mb'] for m in merged):.0f}, "
                 f"plan {plan['peak_mb']:.0f}, commit {done['peak_mb']:.0f}"}]
    print(f"\nbenchmarks/ingest_mapped.py --rows {args.rows} --tasks {args.tasks} --slots {args.slots} — {today()} — "
          f"{machine()}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
