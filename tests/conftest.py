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
from helpers import ARTIFACTS, ROOT

# Airflow reads its configuration at import: point it at a private SQLite DB before any test imports it.
# Always private, even when the Makefile exports the checkout's AIRFLOW_HOME (.airflow/, which `make demo`
# and `make up` use): tests must not see or change the demo's metadata, Assets included.
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="ncf-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(ROOT / "dags")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
# Tests must not pick up a developer's NCF_* settings.
for k in [k for k in os.environ if k.startswith("NCF_")]:
    del os.environ[k]

from ncf_tasks.config import Settings  # noqa: E402
from ncf_tasks.dev import local_s3  # noqa: E402
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
    r = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return os.environ["AIRFLOW_HOME"]


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def dag_env(airflow_db, s3_env, monkeypatch):
    """The DAG tests' process environment: the metadata DB and the test bucket's NCF_* variables."""
    for k, v in s3_env.items():
        monkeypatch.setenv(k, v)
    return s3_env
