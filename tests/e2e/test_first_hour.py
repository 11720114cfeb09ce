"""The first hour's `make up`: Airflow standalone (SQLite, LocalExecutor) and the embedded S3 endpoint start
with the sample logs loaded, the printed login opens the API, every DAG file parses, and `make down` leaves
nothing running.

What an operator then does in the browser (log in, trigger ncf_retrain from the form with changed params,
watch it finish, read the table, open the dashboard and the run's report) is tested on the production
topology instead, in tests/stack/test_stack.py: one Airflow deployment for the suite instead of two, which on
2 cores cost ~4 minutes for the same run. Uses port 8080 as `make up` does and a private AIRFLOW_HOME.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request

import pytest
from helpers import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.servers, pytest.mark.timeout(900)]
UI = "http://127.0.0.1:8080"


def test_make_up_serves_the_ui_with_the_dags_and_make_down_stops_everything(tmp_path_factory):
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        # a third of the demo's sample logs over 2 days instead of 7 (no run trains on them here): `make up`
        # loads them before it answers
        "DEMO_DAYS": "2",
        "DEMO_USERS": "500",
        "DEMO_ITEMS": "300",
        "DEMO_EVENTS_PER_DAY": "3000",
        "NCF_SCHEDULE": "none",
        "S3_DATA_DIR": str(tmp_path_factory.mktemp("s3-data")),  # never the checkout's .data/s3/
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
    }
    up = subprocess.run(
        ["bash", "include/up.sh", "start"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        assert "login: admin / " in up.stdout and "passed" in up.stdout  # the sample days were validated
        password = up.stdout.split("login: admin / ")[1].split()[0]
        req = urllib.request.Request(
            UI + "/auth/token",
            data=json.dumps({"username": "admin", "password": password}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            token = json.load(r)["access_token"]

        def api(path: str) -> dict:
            req = urllib.request.Request(UI + "/api/v2" + path, headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=30) as r:
                return json.load(r)

        expected = {"ncf_retrain", "ncf_ingest", "ncf_topk_consumer", "ncf_tune"}
        for _ in range(60):  # the dag-processor parses the files shortly after start
            dags = {d["dag_id"]: d for d in api("/dags?limit=100")["dags"]}
            if expected <= set(dags):
                break
            time.sleep(2)
        assert expected <= set(dags), sorted(dags)
        assert api("/importErrors")["total_entries"] == 0
        assert not dags["ncf_retrain"]["is_paused"]  # `make up` unpauses at creation: the nightly runs
        with urllib.request.urlopen(UI + "/", timeout=30) as r:
            assert r.status == 200 and b"<html" in r.read(2000).lower()
    finally:
        down = subprocess.run(
            ["bash", "include/up.sh", "stop"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
    assert down.returncode == 0 and "stopped Airflow standalone" in down.stdout, down.stdout + down.stderr
    assert not (ROOT / ".up" / "airflow.pgid").exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(UI + "/api/v2/monitor/health", timeout=5)
