"""Shared fixtures: a real S3 endpoint over HTTP and a real Airflow metadata database.

The S3 endpoint is moto's standalone server in its own process, on a free loopback port, polled until
it answers; each test gets a fresh bucket, so tests never see each other's objects. Nothing is patched:
the code under test reaches the server through ``NCF_S3_ENDPOINT_URL`` like it reaches AWS.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
ML100K = SHARED / "data" / "ml-100k" / "u.data"
ARTIFACTS = ROOT / "test-artifacts"

# Airflow reads its configuration at import: point it at a private SQLite DB before any test imports it.
# Always private, even when the Makefile exports the checkout's AIRFLOW_HOME (.airflow/, which `make demo`
# and `make up` use): tests must not see or change the demo's metadata, Assets included.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="ncf-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
for p in (str(ROOT), str(ROOT / "dags")):
    if p not in sys.path:
        sys.path.insert(0, p)
# Tests must not pick up a developer's NCF_* settings.
for k in [k for k in os.environ if k.startswith("NCF_")]:
    del os.environ[k]

from ncf_tasks import local_s3  # noqa: E402
from ncf_tasks.config import Settings  # noqa: E402
from ncf_tasks.storage import Storage  # noqa: E402


@pytest.fixture(scope="session")
def s3_server():
    server = local_s3.start()
    yield server
    server.stop()


@pytest.fixture
def bucket(s3_server) -> str:
    name = f"t-{uuid.uuid4().hex[:16]}"
    local_s3.create_bucket(s3_server.url, name)
    return name


@pytest.fixture
def s3_env(s3_server, bucket) -> dict[str, str]:
    """NCF_* variables that point a process at the test bucket."""
    return s3_server.env(bucket)


@pytest.fixture
def settings(s3_env) -> Settings:
    return Settings.from_env(env=s3_env)


@pytest.fixture
def storage(settings) -> Storage:
    return Storage(settings)


@pytest.fixture(scope="session")
def airflow_db():
    """A migrated SQLite metadata DB in a private AIRFLOW_HOME (once per session)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return os.environ["AIRFLOW_HOME"]


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


def require_ml100k() -> Path:
    if not ML100K.is_file():
        pytest.skip(f"MovieLens 100K not found at {ML100K}")
    return ML100K


def planted_set(storage: Storage, run_id: str, settings: Settings, **spec) -> Settings:
    """A training set of synthetic events with planted taste groups, written under ``runs/<run_id>/``;
    returns ``settings`` (what the training and tuning tests train with)."""
    from ncf_tasks.build import build_training_set, write_training_set
    from ncf_tasks.generate import SyntheticSpec, synthesize

    ev = synthesize(SyntheticSpec(**{"taste_strength": 0.9, **spec}))
    write_training_set(storage, run_id, build_training_set(ev, settings), settings)
    return settings
