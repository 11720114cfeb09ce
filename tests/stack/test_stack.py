"""The production topology, run for real (issue 14): `include/stack.sh` (what `make stack` runs) starts
PostgreSQL, Redis, the embedded S3 endpoint, CeleryExecutor with api-server, scheduler, dag-processor,
triggerer, a Celery worker on queue `default` and one on queue `gpu`, and a FAB login. The tests talk to
it as an operator would: a real browser (headless Debian chromium driven by Playwright) logs in and
triggers a run from the form, and the REST API with a token from that login watches it.

One stack for the module, with a short GPU-outage deadline (``GPU_WAIT_SECONDS``) so the policy can be
exercised: a queued task waits that long for a worker of its queue, then fails with a notice.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# the stack starts once for the module (a few minutes); each test waits on runs of its own
pytestmark = [pytest.mark.slow, pytest.mark.servers, pytest.mark.timeout(1200)]
PORT, PG_PORT, REDIS_PORT = 18080, 15433, 16390
GPU_WAIT = 50  # seconds a training task may wait for the gpu worker (production: 6 h)
TRAINING = ("pretrain_gmf", "pretrain_mlp", "fit_ease", "train_neumf", "evaluate", "score_shard")
SMALL = {"epochs": 2, "publish_shards": 2}  # the mapped score shards run on the gpu worker too
FORM = {**SMALL, "publish_k": 17}  # what the operator changes in the trigger form (K: recommendations per user)
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Stack:
    def __init__(self, home: Path, env: dict[str, str]):
        self.home, self.env, self.url = home, env, f"http://127.0.0.1:{PORT}"
        self.password = self._secret("STACK_ADMIN_PASSWORD")
        self.token = self.login("admin", self.password)

    def _secret(self, key: str) -> str:
        for line in (self.home / "secrets.env").read_text().splitlines():
            if line.startswith(key + "="):
                return line.split("=", 1)[1]
        raise KeyError(key)

    def script(self, *args: str) -> str:
        r = subprocess.run(
            ["bash", str(ROOT / "include" / "stack.sh"), *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
        return r.stdout

    def login(self, user: str, password: str) -> str:
        body = json.dumps({"username": user, "password": password}).encode()
        req = urllib.request.Request(
            f"{self.url}/auth/token", data=body, method="POST", headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)["access_token"]

    def api(self, method: str, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(
            f"{self.url}/api/v2{path}",
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    def trigger(self, dag_id: str, conf: dict) -> str:
        return self.api("POST", f"/dags/{dag_id}/dagRuns", {"logical_date": None, "conf": conf})["dag_run_id"]

    def asset_events(self, run_id: str) -> int:
        """How many Asset events ``ncf_retrain``'s run ``run_id`` emitted (a published table announces one)."""
        q = urllib.parse.urlencode({"source_dag_id": "ncf_retrain", "source_run_id": run_id})
        return self.api("GET", f"/assets/events?{q}")["total_entries"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}")["state"]

    def tis(self, dag_id: str, run_id: str) -> dict[str, dict]:
        rows = self.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances?limit=100")["task_instances"]
        return {t["task_id"]: t for t in rows}

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 600) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.run_state(dag_id, run_id)
            if state in ("success", "failed"):
                return state
            time.sleep(3)
        raise AssertionError(
            f"{dag_id} {run_id} still {state} after {timeout} s: "
            f"{ {k: v['state'] for k, v in self.tis(dag_id, run_id).items()} }"
        )

    def wait_task_state(self, dag_id: str, run_id: str, task_id: str, state: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.tis(dag_id, run_id).get(task_id, {}).get("state") == state:
                return
            time.sleep(2)
        raise AssertionError(f"{task_id} never reached {state}: {self.tis(dag_id, run_id).get(task_id)}")


@pytest.fixture(scope="module")
def stack() -> Stack:
    have = any(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")) and shutil.which("redis-server") is not None
    if not have and os.geteuid() != 0:  # root (CI) installs them through include/stack.sh
        pytest.skip("needs Debian's postgresql and redis-server (apt-get install postgresql redis-server)")
    # not under pytest's tmp_path: that is private to root, and PostgreSQL runs as the postgres account
    home = Path(tempfile.mkdtemp(prefix="ncf-stack-"))
    home.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NCF_", "AIRFLOW"))}
    env.update(
        STACK_DIR=str(home),
        STACK_PORT=str(PORT),
        STACK_PG_PORT=str(PG_PORT),
        STACK_REDIS_PORT=str(REDIS_PORT),
        GPU_WAIT_SECONDS=str(GPU_WAIT),
        # the DAG files do not change during the module: parsed once at start, not every 30 s (2 cores)
        AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="3600",
        STACK_QUEUED_CHECK_SECONDS="5",
        PYTHON=sys.executable,
        PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '')}",
        NCF_BUCKET="ncf-stack",
        NCF_SCHEDULE="none",
        DEMO_USERS="500",
        DEMO_ITEMS="300",
        DEMO_EVENTS_PER_DAY="3000",
    )
    r = subprocess.run(
        ["bash", str(ROOT / "include" / "stack.sh"), "start"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    try:
        assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
        s = Stack(home, env)
        for dag_id in ("ncf_retrain", "ncf_topk_consumer"):
            for _ in range(60):  # the dag-processor parses the files shortly after start
                try:
                    s.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})
                    break
                except urllib.error.HTTPError as e:
                    assert e.code == 404, e.read()[:500]
                    time.sleep(2)
            else:
                raise AssertionError(f"{dag_id} was never parsed; see {home}/logs/dag-processor.log")
        yield s
    finally:
        subprocess.run(
            ["bash", str(ROOT / "include" / "stack.sh"), "stop"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        # the components' logs outlive the stack, for a failed CI run (test-artifacts/ is kept there)
        keep = ROOT / "test-artifacts" / "stack"
        shutil.rmtree(keep, ignore_errors=True)
        for sub in ("logs", "airflow/logs"):
            if (home / sub).is_dir():
                shutil.copytree(home / sub, keep / sub, dirs_exist_ok=True)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="module")
def gpu_away_run(stack: Stack) -> str:
    """A run started while the gpu worker is away, which stays away past ``GPU_WAIT`` for this run: its training
    waits queued, then fails. Started first and waited on by the form's run (which queues later, so its wait
    stays inside the deadline), so that the two waits overlap instead of costing the suite two runs."""
    stack.script("worker-stop", "gpu")
    run_id = stack.trigger("ncf_retrain", SMALL)
    stack.wait_task_state("ncf_retrain", run_id, "pretrain_gmf", "queued")
    return run_id


def test_login_is_checked_against_the_metadata_db(stack):
    with pytest.raises(urllib.error.HTTPError) as bad:
        stack.login("admin", "not-the-password")
    assert bad.value.code == 401
    assert stack.api("GET", "/monitor/health")["scheduler"]["status"] == "healthy"


def launch(p):
    """Debian's chromium, headless, through Playwright (no browser download)."""
    return p.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
              "--disable-component-update", "--disable-sync"],
    )  # fmt: skip


def trigger_from_the_form(page, stack: Stack, artifacts: Path) -> str:
    """An operator's trigger: log in through FAB's form, open the DAG, change params in the trigger form, submit.
    Returns the id of the run the form created (read back through the API)."""
    before = stack.api("GET", "/dags/ncf_retrain/dagRuns")["total_entries"]
    page.goto(stack.url + "/", wait_until="networkidle")
    page.wait_for_selector("input[name=username]", timeout=60_000)
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", stack.password)
    page.locator("input[type=submit]").click()
    # the login answers with a redirect to "/": let it land before navigating, or it wins the race
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=60_000)
    page.wait_for_load_state("networkidle")
    page.goto(stack.url + "/dags/ncf_retrain", wait_until="networkidle")
    trigger = page.get_by_role("button", name="Trigger").first
    trigger.wait_for(timeout=60_000)
    trigger.click()
    dialog = page.get_by_role("dialog")
    for name, value in FORM.items():
        field = dialog.locator(f"input[name=element_{name}]")
        field.wait_for(timeout=60_000)
        field.fill(str(value))
    page.screenshot(path=str(artifacts / "e2e-trigger-form.png"))
    dialog.get_by_role("button", name="Trigger").click()
    deadline = time.monotonic() + 60
    while stack.api("GET", "/dags/ncf_retrain/dagRuns")["total_entries"] == before:
        assert time.monotonic() < deadline, "the trigger form created no run in 60 s"
        time.sleep(1)
    # the open DAG page polls the API every few seconds: its renderer would take a core from the run
    page.goto("about:blank")
    return stack.api("GET", "/dags/ncf_retrain/dagRuns?order_by=-run_after&limit=1")["dag_runs"][0]["dag_run_id"]


def test_a_run_from_the_trigger_form_waits_for_the_gpu_worker_trains_there_publishes_and_feeds_the_consumer(
    stack, gpu_away_run, artifacts
):
    """One run for the promises an operator sees (each DAG run costs the suite about two minutes): a run
    triggered from the UI's form with changed params; training queued while the gpu worker is away waits
    without failing (while the run queued before it fails at the deadline), then runs on that worker when it
    returns; the queues; the table has the form's K; the Asset event starts the consumer; the runs dashboard and
    the run's report, opened from the bucket's local copy, link to each other and to the day's Data Docs.
    Screenshots go to test-artifacts/."""
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium); .ci/run installs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)  # the UI's first load compiles and fetches its bundles
        try:
            run_id = trigger_from_the_form(page, stack, artifacts)
            stack.wait_task_state("ncf_retrain", run_id, "pretrain_gmf", "queued")
            # no worker consumes the gpu queue: training stays queued, nothing fails, until the earlier run's
            # training has waited out the deadline (the span to observe; this run's began later)
            stack.wait_task_state("ncf_retrain", gpu_away_run, "pretrain_gmf", "failed", timeout=GPU_WAIT + 120)
            tis = stack.tis("ncf_retrain", run_id)
            assert tis["pretrain_gmf"]["state"] == tis["pretrain_mlp"]["state"] == "queued", tis
            assert stack.run_state("ncf_retrain", run_id) == "running"
            stack.script("worker-start", "gpu")
            assert stack.wait_run("ncf_retrain", run_id) == "success", stack.tis("ncf_retrain", run_id)
            page.goto(f"{stack.url}/dags/ncf_retrain/runs/{run_id}", wait_until="networkidle")
            page.get_by_text(run_id).first.wait_for(timeout=60_000)
            page.screenshot(path=str(artifacts / "e2e-finished-run.png"), full_page=True)
        finally:
            browser.close()
    run = stack.api("GET", f"/dags/ncf_retrain/dagRuns/{run_id}")
    assert {k: run["conf"].get(k) for k in FORM} == FORM, run["conf"]
    tis = stack.tis("ncf_retrain", run_id)
    assert tis["pretrain_gmf"]["try_number"] == 1
    for task_id in TRAINING:
        assert tis[task_id]["queue"] == "gpu" and tis[task_id]["hostname"].startswith("gpu@"), tis[task_id]
    for task_id in ("ingest", "validate", "build", "gate", "shards", "publish"):
        assert tis[task_id]["queue"] == "default" and tis[task_id]["hostname"].startswith("default@"), tis[task_id]
    # the gpu worker's three slots: GMF and MLP pretrain at the same time (and EASE^R beside them)
    g, m = tis["pretrain_gmf"], tis["pretrain_mlp"]
    assert max(g["start_date"], m["start_date"]) < min(g["end_date"], m["end_date"]), (g, m)
    assert tis["publish"]["state"] == "success"

    # the published table, read as a downstream job reads it
    from ncf_tasks.config import Settings
    from ncf_tasks.reader import latest_pointer, load_latest

    s3 = json.loads((stack.home / "s3.json").read_text())
    settings = Settings.from_env(
        env={
            "NCF_S3_ENDPOINT_URL": s3["url"],
            "NCF_BUCKET": stack.env["NCF_BUCKET"],
            "NCF_S3_ACCESS_KEY_ID": "testing",  # what include/stack.sh gives its components
            "NCF_S3_SECRET_ACCESS_KEY": "testing",
        }
    )
    pointer = latest_pointer(settings)
    table = load_latest(settings).collect()
    assert pointer["run_id"] == run_id and pointer["k"] == FORM["publish_k"]
    assert table["rank"].max() == FORM["publish_k"] and table.height == pointer["rows"] > 0

    # the run announced the table (the event the deadline test looks for and must not find for its run)
    assert stack.asset_events(run_id) == 1
    # the Asset event started the consumer, which read the table just published
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        runs = stack.api("GET", "/dags/ncf_topk_consumer/dagRuns")["dag_runs"]
        if any(r["state"] == "success" for r in runs):
            break
        time.sleep(3)
    else:
        raise AssertionError(f"the consumer did not succeed: {runs}")

    # what the run left to look at, opened from the endpoint's local copy of the bucket
    saved = subprocess.run(
        [sys.executable, "-m", "ncf_tasks.dev.local_s3", "save", "--state", str(stack.home / "s3.json")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert saved.returncode == 0, saved.stderr[-2000:]
    dashboard = stack.home / "s3" / stack.env["NCF_BUCKET"] / "reports" / "index.html"
    assert dashboard.is_file()
    with sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(dashboard.as_uri())
            row = page.locator("#runs tr", has_text=run_id)
            assert row.count() == 1 and "yes" in row.inner_text()  # published
            assert page.locator("#plots svg").count() == 5  # quality, NDCG, volume, coverage, stability
            page.screenshot(path=str(artifacts / "e2e-dashboard.png"), full_page=True)
            row.get_by_role("link", name="report").click()
            page.wait_for_load_state()
            assert run_id in page.title() and page.locator("#gate").inner_text() in ("PUBLISH", "FORCED PUBLISH")
            assert page.locator("#training tr").count() == 4  # header + gmf, mlp, neumf
            page.screenshot(path=str(artifacts / "e2e-run-report.png"), full_page=True)
            for name in ("all runs (dashboard)", f"validation Data Docs of {pointer['partition']}"):
                href = page.get_by_role("link", name=name).get_attribute("href")
                assert (Path(page.url.removeprefix("file://")).parent / href).resolve().is_file(), href
        finally:
            browser.close()
    assert (artifacts / "e2e-finished-run.png").stat().st_size > 10_000


def test_gpu_worker_away_past_the_deadline_fails_the_run_with_a_notice(stack, gpu_away_run):
    run_id = gpu_away_run
    assert stack.wait_run("ncf_retrain", run_id, timeout=GPU_WAIT + 400) == "failed"
    tis = stack.tis("ncf_retrain", run_id)
    gmf = tis["pretrain_gmf"]
    assert gmf["state"] == "failed" and gmf["hostname"] in (None, ""), gmf  # never reached a worker
    assert tis["publish"]["state"] in ("upstream_failed", None), tis["publish"]
    # nothing published: the run announced no table (the consumer's Asset has no event from it)
    assert stack.asset_events(run_id) == 0
    # the DAG's failure callback (run by the dag-processor) wrote the one-line notice naming the cause
    deadline, lines = time.monotonic() + 120, []
    while time.monotonic() < deadline and not lines:
        lines = [
            ln
            for p in (stack.home / "airflow" / "logs").rglob("*")
            if p.is_file()
            for ln in p.read_text(errors="replace").splitlines()
            if "NCF FAILED" in ln and run_id in ln
        ]
        time.sleep(3)
    assert lines and any("no worker of queue 'gpu'" in ln for ln in lines), lines
