"""Builders and constants the test modules share (no test module imports another, nor conftest)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
ML100K = SHARED / "data" / "ml-100k" / "u.data"
ARTIFACTS = ROOT / "test-artifacts"
BAD = ROOT / "tests" / "data" / "bad_batches"  # hostile input: each file breaks one rule (README there)
EDGE = ROOT / "tests" / "data" / "raw_edge_cases"  # legal but unusual files every reader must take

# the DAG tests' schedule: a nightly run at 02:00 processes the day before (NCF_DATE_LAG_DAYS=1)
LOGICAL = dt.datetime(2026, 11, 27, 2, 0, tzinfo=dt.UTC)
DAY = "2026-11-26"


def require_ml100k() -> Path:
    if not ML100K.is_file():
        pytest.skip(f"MovieLens 100K not found at {ML100K}")
    return ML100K


# the planted set the training and data-parallel tests train on: 400 users in 6 taste groups, 5 days
PLANTED = dict(users=400, items=300, days=5, events_per_day=3000, groups=6, seed=2)


def planted_set(storage, run_id: str, settings, **spec):
    """A training set of synthetic events with planted taste groups, written under ``runs/<run_id>/``;
    returns ``settings`` (what the training and tuning tests train with)."""
    from ncf_tasks.build import build_training_set, write_training_set
    from ncf_tasks.generate import SyntheticSpec, synthesize

    ev = synthesize(SyntheticSpec(**{"taste_strength": 0.9, **spec}))
    write_training_set(storage, run_id, build_training_set(ev, settings), settings)
    return settings


def get_dag(dag_id: str):
    """A DAG parsed from dags/ as the dag-processor parses it; fails on any import error."""
    from airflow.dag_processing.dagbag import BundleDagBag

    bag = BundleDagBag(dag_folder=str(ROOT / "dags"), bundle_path=ROOT / "dags")
    assert bag.import_errors == {}
    return bag.get_dag(dag_id)


def states(dag_run) -> dict:
    return {ti.task_id: ti.state for ti in dag_run.get_task_instances()}


def cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    """``python -m ncf_tasks ARGS`` in a fresh interpreter, with ``env`` added to this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "ncf_tasks", *args], env={**os.environ, **env}, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip


def last_json(r: subprocess.CompletedProcess) -> dict:
    """The CLI's result: the last line of its stdout."""
    return json.loads(r.stdout.strip().splitlines()[-1])
