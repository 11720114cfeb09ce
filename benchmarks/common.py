"""Shared by the benchmark scripts: an embedded S3 endpoint, a run's training set, peak memory, the machine's
description."""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from ncf_tasks.config import Settings
from ncf_tasks.dev import local_s3
from ncf_tasks.rundata import Manifest

ROOT = Path(__file__).resolve().parents[1]


@contextmanager
def embedded_s3_env(bucket: str = "bench", data_dir: str | None = None):
    """The endpoint's environment (NCF_* variables), for benchmarks that measure in child processes.
    ``data_dir``: persisted there, as ``make demo`` / ``make up`` run it (saver every 5 s)."""
    server = local_s3.start_persistent(data_dir) if data_dir else local_s3.start()
    try:
        local_s3.create_bucket(server.url, bucket)
        yield server.env(bucket)
    finally:
        server.stop()


@contextmanager
def embedded_s3(bucket: str = "bench"):
    with embedded_s3_env(bucket) as env:
        yield Settings.from_env(env=env)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, {platform.system()}"


def today() -> str:
    return dt.date.today().isoformat()


class PeakRSS:
    """Peak resident memory of this process during a block, sampled every 20 ms (MB)."""

    def __enter__(self):
        self.peak = self._rss()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _rss(self) -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._rss())
            time.sleep(0.02)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._rss())


def write_core(storage, run_id: str, events, settings: Settings, **kw) -> Manifest:
    """Build's core over ``events`` written as run ``run_id``'s training set, as the build task writes it, so
    ``run_train`` can train on it. ``kw``: ``write_training_set``'s (``profile``)."""
    from ncf_tasks.build import build_training_set, write_training_set  # polars: not at import

    return write_training_set(storage, run_id, build_training_set(events, settings), settings, **kw)


def table(rows: list[dict]) -> str:
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def _fork_tasks(jobs: list[tuple], slots: int) -> tuple[list, float]:
    """In a worker process: each ``(fn, *args)`` job in a child forked from it, at most ``slots`` at once,
    the child ending with ``os._exit``. Returns (results in job order, wall seconds from the first fork to
    the last exit). A child's exception is raised here as a RuntimeError naming the job."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="bench-tasks-") as out_dir:  # each task's pickled result
        return _run_forked(jobs, slots, out_dir)


def _run_forked(jobs: list[tuple], slots: int, out_dir: str) -> tuple[list, float]:
    import pickle

    pending, running, results = list(enumerate(jobs)), {}, [None] * len(jobs)
    t0 = time.perf_counter()
    while pending or running:
        while pending and len(running) < slots:
            i, (fn, *args) = pending.pop(0)
            path = os.path.join(out_dir, f"{i}.pickle")
            pid = os.fork()
            if pid == 0:  # the task process
                try:
                    result = ("ok", fn(*args))
                except BaseException as exc:  # noqa: BLE001 - reported to the parent
                    result = ("error", f"{type(exc).__name__}: {exc}")
                with open(path, "wb") as f:
                    pickle.dump(result, f)
                os._exit(0)
            running[pid] = (i, path)
        pid, _status = os.wait()
        i, path = running.pop(pid)
        with open(path, "rb") as f:
            kind, value = pickle.load(f)
        if kind == "error":
            raise RuntimeError(f"task {i} ({jobs[i][0].__name__}) failed: {value}")
        results[i] = value
    return results, time.perf_counter() - t0


def run_tasks(jobs: list[tuple], slots: int = 1) -> tuple[list, float]:
    """Run ``(fn, *args)`` jobs as Airflow 3 runs task instances: a long-lived worker process (spawned once
    here, holding only what the benchmark module imports, never torch or polars) forks a task process per
    task instance and the task process ends with ``os._exit`` (``airflow.sdk.execution_time.supervisor``'s
    ``_fork_main``), ``slots`` at a time (a LocalExecutor's parallelism, a Celery worker's concurrency).
    So each task pays its own imports of torch/polars and its loads, but not an interpreter's start or
    teardown. Returns (results in job order, wall seconds from the first task's start to the last one's end)."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as worker:
        return worker.submit(_fork_tasks, jobs, slots).result()
