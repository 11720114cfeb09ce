"""Issue 16: a first day that leaves something to look at — persistent embedded storage, the runs
dashboard, compact Data Docs, quiet logs, real data through the real path."""

import datetime as dt
import json
import logging
import os
import subprocess
import sys
import time

from helpers import BAD, ROOT, require_ml100k

from ncf_tasks import dashboard, layout
from ncf_tasks.backfill import run_backfill
from ncf_tasks.build import build_training_set, write_training_set
from ncf_tasks.dev import local_s3
from ncf_tasks.evaluate import run_evaluate
from ncf_tasks.generate import SyntheticSpec, run_generate, synthesize
from ncf_tasks.movielens import run_load_movielens
from ncf_tasks.publish import run_publish
from ncf_tasks.train import run_train

DAY = "2026-11-26"
NOW = dt.datetime(2026, 11, 27, 2, tzinfo=dt.UTC)


def s3cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "ncf_tasks.dev.local_s3", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ},
    )


def test_embedded_storage_persists_across_restarts_and_resets(tmp_path):
    state, data = tmp_path / "s3.json", tmp_path / "s3"
    assert (
        s3cli(
            "start", "--state", str(state), "--bucket", "ncf-demo", "--data-dir", str(data), "--autosave", "0.5"
        ).returncode
        == 0
    )
    try:
        url = json.loads(state.read_text())["url"]
        client = local_s3._client(url)
        client.put_object(Bucket="ncf-demo", Key="runs/r1/report.html", Body=b"<p>r1</p>", ContentType="text/html")
        client.put_object(
            Bucket="ncf-demo",
            Key="recs/topk/_latest.json",
            Body=json.dumps({"run_id": "r1", "partition": DAY, "files": ["runs/r1/report.html"]}).encode(),
        )
        client.put_object(Bucket="ncf-demo", Key="tmp/gone.bin", Body=b"x")
        deadline = time.monotonic() + 20
        while not (data / "ncf-demo" / "tmp" / "gone.bin").is_file() and time.monotonic() < deadline:
            time.sleep(0.2)  # the saver mirrors while the endpoint runs
        assert (data / "ncf-demo" / "runs" / "r1" / "report.html").read_bytes() == b"<p>r1</p>"
        client.delete_object(Bucket="ncf-demo", Key="tmp/gone.bin")
        paths = s3cli("paths", "--state", str(state)).stdout
        assert "runs dashboard" not in paths and "report of served run" in paths
    finally:
        assert s3cli("stop", "--state", str(state)).returncode == 0  # saves, then stops
    assert not (data / "ncf-demo" / "tmp" / "gone.bin").exists()  # deletions are mirrored too
    assert s3cli("start", "--state", str(state), "--bucket", "ncf-demo", "--data-dir", str(data)).returncode == 0
    try:
        client = local_s3._client(json.loads(state.read_text())["url"])
        obj = client.get_object(Bucket="ncf-demo", Key="runs/r1/report.html")
        assert obj["Body"].read() == b"<p>r1</p>" and obj["ContentType"] == "text/html"
    finally:
        s3cli("stop", "--state", str(state))
    assert s3cli("reset", "--data-dir", str(data)).returncode == 0 and not data.exists()


def test_backfill_goes_through_validation_and_reports_bad_days(storage):
    run_generate(storage.settings, spec=SyntheticSpec(users=80, items=60, days=3, events_per_day=400, end_date=DAY))
    storage.put_bytes(layout.raw_partition(DAY) + "bad.csv", (BAD / "nan_value.csv").read_bytes())
    r = run_backfill(storage.settings, start="2026-11-23", end=DAY, now=NOW)
    assert (r["days"], r["passed"], r["without_logs"]) == (4, 2, 1)
    assert [q["date"] for q in r["quarantined"]] == [DAY] and "value_finite" in r["quarantined"][0]["why"]
    assert storage.exists(layout.validated_marker("2026-11-25")) and not storage.exists(layout.lake_file(DAY))


def test_real_movielens_days_pass_validation_with_default_settings(storage):
    """A bulk historical load is not a nightly volume anomaly: old days skip the volume band."""
    loaded = run_load_movielens(storage.settings, path=str(require_ml100k()))
    first = dt.date.fromisoformat(loaded["first_day"])
    r = run_backfill(storage.settings, start=first.isoformat(), end=(first + dt.timedelta(days=9)).isoformat())
    assert r["quarantined"] == [] and r["passed"] >= 5
    marker = storage.get_json(layout.validated_marker(first.isoformat()))
    assert any("volume_band and max_user_share skipped" in n and "backfill" in n for n in marker["notes"])


def test_recent_days_are_still_judged_by_the_volume_band(storage):
    s = storage.settings
    for k, rows in ((3, 40), (2, 40), (1, 40)):
        d = (dt.date.fromisoformat(DAY) - dt.timedelta(days=k)).isoformat()
        body = "user_id,item_id,event_ts\n" + "".join(f"u{i},i{i % 7},{d}T00:{i % 60:02d}:00Z\n" for i in range(rows))
        storage.put_bytes(layout.raw_partition(d) + "a.csv", body.encode())
    storage.put_bytes(layout.raw_partition(DAY) + "a.csv", (BAD / "volume_collapse.csv").read_bytes())
    r = run_backfill(s, start="2026-11-23", end=DAY, now=NOW)
    assert [q["date"] for q in r["quarantined"]] == [DAY] and "volume_band" in r["quarantined"][0]["why"]


def test_data_docs_share_one_copy_of_their_static_assets_and_validation_is_quiet(storage, caplog):
    run_generate(storage.settings, spec=SyntheticSpec(users=80, items=60, days=2, events_per_day=400, end_date=DAY))
    with caplog.at_level(logging.INFO):
        run_backfill(storage.settings, start="2026-11-25", end=DAY, now=NOW)
    assert not [r for r in caplog.records if r.name.startswith("great_expectations") and r.levelno < logging.WARNING]
    for d in ("2026-11-25", DAY):
        keys = storage.list_keys(layout.validation_report(d))
        assert keys and all(k.endswith(".html") for k in keys), keys  # pages only: no per-day static/
    shared = storage.list(layout.validation_static())
    assert [o["key"].rsplit("/", 1)[1] for o in shared] == ["favicon.ico"]
    index = storage.get_bytes(layout.validation_report(DAY) + "index.html").decode()
    assert 'href="../_static/images/favicon.ico"' in index
    total = sum(o["size"] for o in storage.list("reports/validation/"))
    assert total < 400_000, total  # was ~4 MB per day


def test_dashboard_rows_plots_and_links(storage):
    s = storage.settings.replace(
        epochs=2,
        batch_size=1024,
        factors=8,
        mlp_layers=(16, 8),
        threads=2,
        publish_k=20,
        gate_min_lift=-1.0,
        gate_tolerance=1.0,
        eval_negatives=50,
    )
    for run_id, seed, day in (("r1", 1, "2026-11-25"), ("r2", 2, DAY)):
        ev = synthesize(SyntheticSpec(users=150, items=120, days=3, events_per_day=1500, groups=5, seed=seed))
        write_training_set(storage, run_id, build_training_set(ev, s), s, end_date=day, build_seconds=1.5)
        for m in ("gmf", "mlp", "neumf"):
            run_train(s, run_id=run_id, model=m)
        ev = run_evaluate(s, run_id=run_id)
        assert ev["training"]["neumf"]["fused"] and ev["training"]["gmf"]["epochs_run"] == 2
        assert ev["training"]["neumf"]["stop_reason"] == "reached epochs=2" and ev["dashboard_uri"].endswith(
            "reports/index.html"
        )
        if run_id == "r1":
            run_publish(s, run_id=run_id, date=day)
    page = storage.get_bytes(layout.dashboard()).decode()
    assert page.count("<svg") == 5 and "<code>r1</code>" in page and "<code>r2</code>" in page
    drawn = storage.list(layout.dashboard_plots())[0]["etag"]
    dashboard.rebuild(storage)  # nothing the plots show changed (as at publish): they are not drawn again
    assert storage.list(layout.dashboard_plots())[0]["etag"] == drawn
    assert storage.get_bytes(layout.dashboard()).decode().count("<svg") == 5
    table = page[page.index('<table id="runs"') :]
    assert table.index("<code>r2</code>") < table.index("<code>r1</code>")  # newest first
    assert 'href="../runs/r1/report.html"' in page and 'href="../reports/validation/dt=2026-11-25/index.html"' in page
    rows = page.split("<tr><td><code>")
    assert ">yes<" in next(r for r in rows if r.startswith("r1")) and ">no<" in next(
        r for r in rows if r.startswith("r2")
    )
    report = storage.get_bytes("runs/r2/report.html").decode()
    assert 'href="../../reports/index.html"' in report and "(fused start)" in report and report.count("<svg") == 2
