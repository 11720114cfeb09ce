"""The first hour, in a real browser: `make up`, log in, trigger ncf_retrain with a changed param,
wait for success, read the published table through the reader, keep a screenshot of the run; then open
the runs dashboard from the persisted local copy of the bucket, follow the run's report link, check its
links to the dashboard and to the day's Data Docs, and keep screenshots of both pages.

Needs Debian's chromium (/usr/bin/chromium); `.ci/run` installs it. Playwright drives it directly
(no browser download). Uses port 8080 as `make up` does, a private AIRFLOW_HOME, a smaller sample of the demo's data and 2 epochs with the gate's
lift requirement off (the run must publish; the model's quality is other tests' subject) without the refit, and with ``NCF_SCHEDULE=none``: under
`make up` unpausing the DAG also starts the run of the latest 02:00 (catchup=False), which took half of this
test's ~4.5 minutes of CI time and is asserted on by nothing here; scheduled runs are the DAG tests' subject
(tests/dags/), the refit tests/integration/test_train.py's.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from helpers import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.servers, pytest.mark.timeout(1500)]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
UI = "http://127.0.0.1:8080"
K = 17  # the changed param: recommendations per user in the published table


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it")
    home = tmp_path_factory.mktemp("airflow-home")
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "NCF_EPOCHS": "2",
        # a third of the demo's sample logs: what the UI shows does not depend on the volume, the run's time does
        "DEMO_USERS": "500",
        "DEMO_ITEMS": "300",
        "DEMO_EVENTS_PER_DAY": "3000",
        "NCF_GATE_MIN_LIFT": "-1",
        "NCF_REFIT": "false",
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
        assert "login: admin / " in up.stdout
        password = up.stdout.split("login: admin / ")[1].split()[0]
        s3 = json.loads((ROOT / ".up" / "s3.json").read_text())
        yield {"password": password, "s3": s3, "env": env}
    finally:
        subprocess.run(["bash", "include/up.sh", "stop"], cwd=ROOT, env=env, capture_output=True, timeout=120)


def api(path: str, token: str) -> dict:
    req = urllib.request.Request(UI + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def wait_for(get, done, timeout: float, every: float = 2.0):
    """Poll ``get()`` until ``done(value)``; the last value, or AssertionError naming it after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = get()
        if done(value):
            return value
        assert time.monotonic() < deadline, f"not done after {timeout} s: {value}"
        time.sleep(every)


def token(password: str) -> str:
    req = urllib.request.Request(
        UI + "/auth/token",
        data=json.dumps({"username": "admin", "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)["access_token"]


def test_trigger_from_the_form_and_read_the_table(stack, artifacts):
    from playwright.sync_api import sync_playwright

    from ncf_tasks.config import Settings
    from ncf_tasks.dev.local_s3 import DUMMY_KEY
    from ncf_tasks.reader import latest_pointer, load_latest

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        # the UI's first load compiles and fetches its bundles while other test workers use the cores
        page.set_default_timeout(120_000)
        try:
            page.goto(UI + "/", wait_until="networkidle")
            page.wait_for_selector("input[name=username]", timeout=60_000)
            page.fill("input[name=username]", "admin")
            page.fill("input[name=password]", stack["password"])
            page.click("button[type=submit]")
            # the login answers with a redirect to "/": let it land before navigating, or it wins the race
            page.wait_for_url(lambda url: "/auth/login" not in url, timeout=60_000)
            page.wait_for_load_state("networkidle")
            page.goto(UI + "/dags/ncf_retrain", wait_until="networkidle")
            trigger = page.get_by_role("button", name="Trigger").first
            trigger.wait_for(timeout=60_000)
            trigger.click()
            dialog = page.get_by_role("dialog")
            k_field = dialog.locator("input[name=element_publish_k]")
            k_field.wait_for(timeout=60_000)
            k_field.fill(str(K))
            page.screenshot(path=str(artifacts / "e2e-trigger-form.png"))
            dialog.get_by_role("button", name="Trigger").click()

            tok = token(stack["password"])
            latest = lambda: (api("/api/v2/dags/ncf_retrain/dagRuns?order_by=-run_after&limit=1", tok)["dag_runs"]
                              or [None])[0]  # fmt: skip
            run = wait_for(latest, lambda r: r is not None, 60)  # the form's request reached the API
            # the open DAG page polls the API every few seconds: its renderer would take a core from the run
            page.goto("about:blank")
            run = wait_for(latest, lambda r: r["state"] in ("success", "failed"), 900)
            assert run["state"] == "success", run
            assert run["conf"]["publish_k"] == K
            page.goto(f"{UI}/dags/ncf_retrain/runs/{run['dag_run_id']}", wait_until="networkidle")
            page.get_by_text(run["dag_run_id"]).first.wait_for(timeout=60_000)
            page.screenshot(path=str(artifacts / "e2e-finished-run.png"), full_page=True)
        finally:
            browser.close()

    settings = Settings.from_env(
        env={
            "NCF_S3_ENDPOINT_URL": stack["s3"]["url"],
            "NCF_BUCKET": stack["s3"]["bucket"],
            "NCF_S3_ACCESS_KEY_ID": DUMMY_KEY,
            "NCF_S3_SECRET_ACCESS_KEY": DUMMY_KEY,
        }
    )
    pointer = latest_pointer(settings)
    table = load_latest(settings).collect()
    assert pointer["run_id"] == run["dag_run_id"] and pointer["k"] == K
    assert table["rank"].max() == K and table.height == pointer["rows"] > 0
    assert (artifacts / "e2e-finished-run.png").stat().st_size > 10_000

    # what the run left to look at, opened from the persisted local copy (.data/s3/ for a user)
    saved = subprocess.run(
        [sys.executable, "-m", "ncf_tasks.dev.local_s3", "save", "--state", str(ROOT / ".up" / "s3.json")],
        cwd=ROOT,
        env=stack["env"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert saved.returncode == 0, saved.stderr[-2000:]
    bucket_dir = Path(stack["env"]["S3_DATA_DIR"]) / stack["s3"]["bucket"]
    dashboard = bucket_dir / "reports" / "index.html"
    assert dashboard.is_file()
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(dashboard.as_uri())
            row = page.locator("#runs tr", has_text=run["dag_run_id"])
            assert row.count() == 1 and "yes" in row.inner_text()  # published
            assert page.locator("#plots svg").count() == 5  # quality, NDCG, volume, coverage, stability
            page.screenshot(path=str(artifacts / "e2e-dashboard.png"), full_page=True)
            row.get_by_role("link", name="report").click()
            page.wait_for_load_state()
            assert run["dag_run_id"] in page.title() and page.locator("#gate").inner_text() in (
                "PUBLISH",
                "FORCED PUBLISH",
            )
            assert page.locator("#training tr").count() == 4  # header + gmf, mlp, neumf
            page.screenshot(path=str(artifacts / "e2e-run-report.png"), full_page=True)
            for name in ("all runs (dashboard)", f"validation Data Docs of {pointer['partition']}"):
                href = page.get_by_role("link", name=name).get_attribute("href")
                assert (Path(page.url.removeprefix("file://")).parent / href).resolve().is_file(), href
        finally:
            browser.close()
