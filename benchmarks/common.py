"""Shared by the benchmark scripts: an embedded S3 endpoint, peak memory, the machine's description."""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ncf_tasks import local_s3  # noqa: E402
from ncf_tasks.config import Settings  # noqa: E402


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


def table(rows: list[dict]) -> str:
    cols = list(rows[0])
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
