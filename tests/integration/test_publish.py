"""Evaluate, gate and publish through the real endpoint; failures injected on the server side."""

import json
import os
import subprocess
import sys
import time
import uuid

import polars as pl
import pytest
from faulty_s3 import FaultyS3

from ncf_tasks import layout
from ncf_tasks.artifacts import RunArtifacts, id_translation
from ncf_tasks.build import build_training_set, write_training_set
from ncf_tasks.config import Settings
from ncf_tasks.dev import local_s3
from ncf_tasks.errors import ConfigError, DataError, GateRejected, NoDataError, StorageError
from ncf_tasks.evaluate import run_evaluate
from ncf_tasks.gate import decide
from ncf_tasks.generate import SyntheticSpec, synthesize
from ncf_tasks.publish import commit, plan_shards, run_publish, score_shard
from ncf_tasks.reader import check_latest, latest_pointer, load_fallback, load_latest, recommend
from ncf_tasks.storage import Storage
from ncf_tasks.train import run_train
from ncf_tasks.validate_catalog import run_validate_catalog

pytestmark = pytest.mark.slow
FAST = dict(
    epochs=2,
    batch_size=1024,
    factors=8,
    mlp_layers=(16, 8),
    threads=2,
    publish_k=20,
    seed=3,
    gate_min_lift=-1.0,
    gate_tolerance=1.0,
)  # gate behaviour has its own tests below


# settings that change what a run's training writes; the others (gate, retention, K) only what evaluate and
# publish do with it, so runs that differ in them alone share one training
_NOT_TRAINING = {
    "gate_min_lift",
    "gate_tolerance",
    "retention_days",
    "publish_k",
    "force_publish",
    "publish_model",
    "catalog_prefix",
    "publish_shards",
}


def _train(storage, run_id, seed, drop_users, s):
    ev = synthesize(SyntheticSpec(users=200, items=150, days=3, events_per_day=2000, groups=5, seed=seed))
    ev = ev.filter(pl.col("user_id") >= f"u{drop_users:06d}")  # fewer users: every index shifts
    write_training_set(storage, run_id, build_training_set(ev, s), s)
    for m in ("gmf", "mlp", "neumf", "ease"):
        run_train(s, run_id=run_id, model=m)


@pytest.fixture(scope="module")
def trained_runs(s3_server):
    """Runs trained once for the module, each in a bucket of its own: a test's run is a server-side copy of
    one (its objects, ETags and digests are the trained ones), so the tests stay independent and the module
    trains 4 runs instead of about 50 models."""
    return {}


@pytest.fixture
def make_run(s3_server, trained_runs):
    def make(storage, run_id, seed=2, drop_users=0, **over):
        s = storage.settings.replace(**{**FAST, **over})
        key = (run_id, seed, drop_users, tuple(sorted((k, v) for k, v in over.items() if k not in _NOT_TRAINING)))
        if key not in trained_runs:
            bucket = f"trained-{uuid.uuid4().hex[:12]}"
            local_s3.create_bucket(s3_server.url, bucket)
            template = Storage(Settings.from_env(env=s3_server.env(bucket)))
            _train(template, run_id, seed, drop_users, template.settings.replace(**{**FAST, **over}))
            trained_runs[key] = template
        template = trained_runs[key]
        for k in template.list_keys(f"runs/{run_id}/"):
            storage.client.copy_object(Bucket=storage.bucket, Key=storage.key(k),
                                       CopySource={"Bucket": template.bucket, "Key": template.key(k)})  # fmt: skip
        return s

    return make


def test_publish_then_reader_then_consumer_checks(storage, make_run):
    s = make_run(storage, "r1")
    ev = run_evaluate(s, run_id="r1")
    assert ev["gate"]["publish"] and "no model in production yet" in ev["gate"]["reasons"]
    assert storage.exists("runs/r1/report.html") and b"<svg" in storage.get_bytes("runs/r1/report.html")
    p = run_publish(s, run_id="r1", date="2026-11-26")
    table = load_latest(s).collect()
    assert table.columns == ["user_id", "rank", "item_id", "score", "model_run_id", "model", "generated_at"]
    assert table.height == p["rows"] and table["rank"].max() == 20 and (table["model_run_id"] == "r1").all()
    assert (table["model"] == "neumf").all()
    assert str(table.schema["generated_at"]) == "Datetime(time_unit='us', time_zone='UTC')"
    assert check_latest(s)["checks"] == ["row count", "ranks 1..n <= K", "no seen items"]
    assert storage.get_json(layout.production_pointer())["run_id"] == "r1"


def test_ease_is_evaluated_beside_neumf_and_shown_in_the_report_and_the_dashboard(storage, make_run):
    s = make_run(storage, "r1")
    ev = run_evaluate(s, run_id="r1")
    assert set(ev["metrics"]) == {"gmf", "mlp", "neumf", "ease", "popularity"} and ev["published_model"] == "neumf"
    metrics = storage.get_json("runs/r1/metrics.json")
    assert metrics["ease"]["status"] == "trained" and metrics["models"]["ease"]["lambda"] == metrics["ease"]["lambda"]
    assert 0 < metrics["models"]["ease"]["val_hr"] <= 1
    assert any("strongest simple baseline" in r for r in ev["gate"]["reasons"])
    report = storage.get_bytes("runs/r1/report.html").decode()
    assert "closed form, λ" in report and 'id="ease"' in report
    assert "EASE^R HR@10" in storage.get_bytes(layout.dashboard()).decode()


def test_ease_above_the_catalogue_bound_is_skipped_logged_and_reported(storage, make_run, caplog):
    s = make_run(storage, "r1")
    assert storage.exists("runs/r1/ease.pt")
    with caplog.at_level("WARNING", logger="ncf_tasks.train"):
        out = run_train(s.replace(ease_max_items=100), run_id="r1", model="ease")
    assert "items > ease_max_items=100" in out["skipped"] and "ease: skipped" in caplog.text
    assert not storage.exists("runs/r1/ease.pt")  # an earlier fit of the run is not evaluated as if current
    ev = run_evaluate(s, run_id="r1")
    assert "ease" not in ev["metrics"] and ev["gate"]["publish"]
    metrics = storage.get_json("runs/r1/metrics.json")
    assert metrics["ease"] == {"status": "skipped", "reason": out["skipped"]}
    assert "ease_max_items=100" in storage.get_bytes("runs/r1/report.html").decode()
    assert "EASE^R skipped" in storage.get_bytes(layout.dashboard()).decode()


def test_publish_model_best_publishes_the_best_on_validation_and_records_it(storage, make_run):
    s = make_run(storage, "r1", publish_model="best")
    ev = run_evaluate(s, run_id="r1")
    metrics = storage.get_json("runs/r1/metrics.json")
    val = {m: v["val_hr"] for m, v in metrics["models"].items()}
    winner = max(val, key=lambda m: (val[m], -("neumf", "gmf", "mlp", "ease", "popularity").index(m)))
    assert ev["published_model"] == winner == metrics["gate"]["model"] and winner != "neumf"
    p = run_publish(s, run_id="r1", date="2026-11-26")
    assert p["model"] == winner and p["model_uri"].endswith(f"runs/r1/{winner}.pt")
    assert (load_latest(s).collect()["model"] == winner).all()
    assert storage.get_json(layout.production_pointer())["model"] == winner
    assert check_latest(s)["checks"] == ["row count", "ranks 1..n <= K", "no seen items"]
    assert winner in storage.get_bytes(layout.dashboard()).decode().lower()
    make_run(storage, "r2", seed=5)  # the next run is compared with the published model, whatever it is
    ev2 = run_evaluate(s.replace(publish_model="neumf"), run_id="r2")
    assert ev2["metrics"]["production"]["model"] == winner and ev2["published_model"] == "neumf"
    # the new lists against the served table, user by user through the string ids
    assert ev2["beyond"]["compared_users"] > 150 and 0 <= ev2["beyond"]["overlap"] <= 1
    assert ev["beyond"]["overlap"] is None and 0 < ev["beyond"]["gini"] < 1 and ev["beyond"]["novelty"] > 0


def test_a_new_user_gets_the_fallback_marked(storage, make_run):
    s = make_run(storage, "r1")
    run_evaluate(s, run_id="r1")
    p = run_publish(s, run_id="r1", date="2026-11-26")
    assert p["fallback"] == layout.topk_fallback("2026-11-26", "r1") and storage.exists(p["fallback"])
    assert storage.get_json(layout.production_pointer())["fallback"] == p["fallback"]
    fallback = load_fallback(s)
    assert fallback["rank"].to_list() == list(range(1, 21)) and fallback["score"].is_sorted(descending=True)
    # the fallback is recency-weighted popularity over the run's whole window
    from ncf_tasks.artifacts import RunArtifacts
    from ncf_tasks.baselines import Popularity
    from ncf_tasks.fitting import recency_weights

    data = RunArtifacts(storage, "r1").load_data().with_everything()
    counts = Popularity.fit(data.train_items, data.n_items, recency_weights(data, s)).counts
    items = RunArtifacts(storage, "r1").id_maps()["items"].sort("item_idx")["item_id"]
    assert fallback["item_id"][0] == items[int(counts.argmax())]

    table = load_latest(s).collect()
    known = table["user_id"].unique().sort()[:2].to_list()
    recs = recommend([known[0], "brand-new", known[1], known[0]], k=5, settings=s)
    assert recs["user_id"].to_list() == [known[0]] * 5 + ["brand-new"] * 5 + [known[1]] * 5  # asked order, once
    assert recs.filter(pl.col("user_id") != "brand-new")["source"].unique().to_list() == ["model"]
    new = recs.filter(pl.col("user_id") == "brand-new")
    assert (
        new["source"].unique().to_list() == ["fallback"]
        and new["item_id"].to_list() == fallback["item_id"][:5].to_list()
    )
    assert new["rank"].to_list() == [1, 2, 3, 4, 5]
    whole = recommend([known[0]], settings=s)  # k defaults to the table's K
    assert (
        whole.height == 20
        and whole["item_id"].to_list() == table.filter(pl.col("user_id") == known[0]).sort("rank")["item_id"].to_list()
    )
    with pytest.raises(ConfigError, match=r"k=21; the table of run r1 holds 1..20 per user"):
        recommend([known[0]], k=21, settings=s)
    assert recommend([], settings=s).height == 0


def _catalogue(storage, s, day, seed):
    """A random catalogue for the run's items: about a third unavailable (by flag or by dates), one left out."""
    import numpy as np

    ids = RunArtifacts(storage, "r1").id_maps()["items"].sort("item_idx")["item_id"].to_list()
    rng = np.random.default_rng(seed)
    why = rng.choice(["ok", "ok", "off", "later", "ended"], len(ids))
    rows = ["item_id,available,available_from,available_until"]
    rows += [
        {"ok": f"{i},true,,", "off": f"{i},false,,", "later": f"{i},true,2026-11-27,", "ended": f"{i},1,,2026-11-25"}[w]
        for i, w in zip(ids[1:], why[1:])  # ids[0] is not listed: not available either
    ]
    put = layout.catalog_partition(s.catalog_prefix, day) + "items.csv"
    storage.put_bytes(put, "\n".join(rows).encode())
    return {i for i, w in zip(ids, why) if w == "ok"} - {ids[0]}


@pytest.mark.parametrize("seed", [0, 1])
def test_with_a_catalogue_no_unavailable_item_is_published_and_the_removals_are_counted(storage, make_run, seed):
    s = make_run(storage, "r1", catalog_prefix="catalog/items/")
    run_evaluate(s, run_id="r1")
    with pytest.raises(NoDataError, match="no item catalogue snapshot"):
        run_publish(s, run_id="r1", date="2026-11-26")
    ok = _catalogue(storage, s, "2026-11-24", seed)
    with pytest.raises(DataError, match="was not validated"):
        run_publish(s, run_id="r1", date="2026-11-26")
    assert not storage.exists(layout.latest_pointer())
    assert run_validate_catalog(s, date="2026-11-26")["available"] == len(ok)
    p = run_publish(s, run_id="r1", date="2026-11-26")
    table, fallback = load_latest(s).collect(), load_fallback(s)
    assert set(table["item_id"]) <= ok and set(fallback["item_id"]) <= ok and fallback.height == min(20, len(ok))
    assert table.group_by("user_id").len()["len"].min() == 20  # lists filled by the model's next-best items
    assert check_latest(s)["checks"] == ["row count", "ranks 1..n <= K", "no seen items"]
    assert RunArtifacts(storage, "r1").publication()["catalog"] == p["catalog"]
    c = p["catalog"]
    assert f"catalogue: {c['items_blocked']} items, {c['slots_removed']} slots removed" in (
        storage.get_bytes(layout.dashboard()).decode()
    )
    unfiltered = run_publish(s.replace(catalog_prefix=""), run_id="r1", date="2026-11-25")
    before = load_latest(s).collect()
    assert unfiltered["catalog"] is None and not set(before["item_id"]) <= ok
    c = p["catalog"]
    assert c["snapshot"] == "2026-11-24" and c["items_blocked"] == c["items"] - len(ok) and c["items_unlisted"] == 1
    assert c["slots_removed"] == before.filter(~pl.col("item_id").is_in(list(ok))).height > 0
    full = RunArtifacts(storage, "r1").fallback().head(20)
    items = RunArtifacts(storage, "r1").id_maps()["items"]
    assert c["fallback_removed"] == full.join(items, on="item_idx").filter(~pl.col("item_id").is_in(list(ok))).height


def test_a_catalogue_replaced_between_the_shards_and_the_commit_is_refused(storage, make_run):
    s = make_run(storage, "r1", catalog_prefix="catalog/items/", publish_shards=2)
    run_evaluate(s, run_id="r1")
    _catalogue(storage, s, "2026-11-26", 0)
    run_validate_catalog(s, date="2026-11-26")
    parts = [score_shard(s, run_id="r1", date="2026-11-26", shard=n, shards=2) for n in range(2)]
    _catalogue(storage, s, "2026-11-26", 1)
    run_validate_catalog(s, date="2026-11-26")
    with pytest.raises(DataError, match="the catalogue changed during the publish; re-run the score shards"):
        commit(s, run_id="r1", date="2026-11-26", parts=parts)
    assert not storage.exists(layout.latest_pointer())


def test_republish_is_idempotent(storage, make_run):
    s = make_run(storage, "r1")
    run_evaluate(s, run_id="r1")
    a = run_publish(s, run_id="r1", date="2026-11-26")
    objs = {o["key"]: o["etag"] for o in storage.list("recs/")}
    time.sleep(1.1)  # evaluated_at has second resolution
    run_evaluate(s, run_id="r1")  # a cleared and re-run evaluate must not change what is published
    b = run_publish(s, run_id="r1", date="2026-11-26")
    assert {k: v for k, v in a.items() if k != "removed"} == {k: v for k, v in b.items() if k != "removed"}
    assert {o["key"]: o["etag"] for o in storage.list("recs/")} == objs


def test_sharded_publish_equals_the_single_table_and_a_rerun_shard_is_idempotent(storage, make_run):
    """Three shards (as the DAG's mapped tasks run them: plan, each shard alone, commit) publish exactly
    the rows of one task; re-running a shard rewrites the same bytes; going back to one shard removes
    the parts the new pointer replaced."""
    s = make_run(storage, "r1")
    run_evaluate(s, run_id="r1")
    single = run_publish(s, run_id="r1", date="2026-11-25")
    whole = load_latest(s).collect().sort("user_id", "rank")
    s3 = s.replace(publish_shards=3)
    plan = plan_shards(s3, run_id="r1")
    assert [p["shard"] for p in plan] == [0, 1, 2] and plan[0]["users"][0] == 0
    assert all(a["users"][1] == b["users"][0] for a, b in zip(plan, plan[1:]))  # contiguous user ranges
    parts = [score_shard(s3, run_id="r1", date="2026-11-26", shard=p["shard"], shards=3) for p in plan]
    etags = {o["key"]: o["etag"] for o in storage.list(layout.topk_partition("2026-11-26"))}
    again = score_shard(s3, run_id="r1", date="2026-11-26", shard=1, shards=3)  # a cleared, re-run shard
    assert again["key"] == parts[1]["key"] and storage.list(again["key"])[0]["etag"] == etags[again["key"]]
    pointer = commit(s3, run_id="r1", date="2026-11-26", parts=[parts[2], parts[0], again])
    assert pointer["files"] == [layout.topk_table("2026-11-26", "r1", n, 3) for n in range(3)]
    assert pointer["uri"].endswith("topk-r1-part-*-of-00003.parquet")
    assert pointer["rows"] == single["rows"] and pointer["users"] == single["users"]
    assert load_latest(s).collect().sort("user_id", "rank").equals(whole)
    assert check_latest(s)["rows"] == single["rows"]
    run_publish(s, run_id="r1", date="2026-11-26")  # one shard again: the three parts are superseded
    assert storage.list_keys(layout.topk_partition("2026-11-26")) == [
        layout.topk_fallback("2026-11-26", "r1"),
        layout.topk_table("2026-11-26", "r1"),
    ]


def test_a_failed_shard_leaves_the_previous_table_live(storage, make_run):
    """A shard that never wrote its part (failed, or its task never ran): commit refuses, naming what is
    missing; the pointer, the table it names and the production record stay as they were."""
    s = make_run(storage, "r1")
    run_evaluate(s, run_id="r1")
    run_publish(s, run_id="r1", date="2026-11-25")
    before = latest_pointer(s)
    make_run(storage, "r2", seed=5)
    run_evaluate(s, run_id="r2")
    s3 = s.replace(publish_shards=3)
    parts = [score_shard(s3, run_id="r2", date="2026-11-26", shard=n, shards=3) for n in range(3)]
    with pytest.raises(DataError, match="not one complete set of 2 shard"):
        commit(s3, run_id="r2", date="2026-11-26", parts=[parts[0], parts[2]])
    storage.delete([parts[1]["key"]])  # the part vanished after its task reported it
    with pytest.raises(DataError, match=r"part-00001-of-00003.parquet'\] missing from the bucket; re-run"):
        commit(s3, run_id="r2", date="2026-11-26", parts=parts)
    assert latest_pointer(s) == before and storage.get_json(layout.production_pointer())["run_id"] == "r1"
    assert load_latest(s).select(pl.len()).collect().item() == before["rows"]


def test_a_shard_scores_evaluates_export_without_torch_and_refuses_any_other_file(storage, s3_env, make_run):
    """A shard task in a fresh interpreter scores the model evaluate exported without importing torch, and
    writes the bytes an in-process shard writes. A model file that is not the exported one (SHA-256), a
    run whose metrics name no export (evaluated by an older version) and an export of a run since rebuilt
    are refused; nothing is published."""
    s = make_run(storage, "r1")
    run_evaluate(s, run_id="r1")
    code = (
        "import json, sys; from ncf_tasks.config import Settings; from ncf_tasks.publish import score_shard; "
        "out = score_shard(Settings.from_env().replace(publish_k=20), run_id='r1', date='2026-11-26', shard=1, "
        "shards=2); print(json.dumps({'torch': 'torch' in sys.modules, 'key': out['key']}))"
    )
    env = {**os.environ, **s3_env, "NCF_DEVICE": "cpu"}
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["torch"] is False
    etag = storage.list(got["key"])[0]["etag"]
    assert score_shard(s, run_id="r1", date="2026-11-26", shard=1, shards=2)["key"] == got["key"]
    assert storage.list(got["key"])[0]["etag"] == etag  # numpy's scoring is the same in any process

    make_run(storage, "r2", seed=5)
    run_evaluate(s, run_id="r2")
    storage.put_bytes("runs/r1/neumf.npz", storage.get_bytes("runs/r2/neumf.npz"))
    with pytest.raises(DataError, match=r"runs/r1/neumf.npz is not the file evaluate exported .*run evaluate for r1"):
        run_publish(s, run_id="r1", date="2026-11-26")
    metrics = storage.get_json("runs/r2/metrics.json")
    storage.put_json("runs/r2/metrics.json", {k: v for k, v in metrics.items() if k != "serving"})
    with pytest.raises(NoDataError, match=r"runs/r2/neumf.npz is missing or not recorded .*run evaluate for r2"):
        run_publish(s, run_id="r2", date="2026-11-26")
    run_evaluate(s, run_id="r1")  # exported again; then the run is rebuilt, and not trained or evaluated again
    ev = synthesize(SyntheticSpec(users=200, items=150, days=3, events_per_day=2000, groups=5, seed=9))
    write_training_set(storage, "r1", build_training_set(ev, s), s)
    with pytest.raises(NoDataError, match=r"runs/r1/neumf.npz was trained on another training set .*run r1 again"):
        run_publish(s, run_id="r1", date="2026-11-26")
    assert not storage.exists(layout.latest_pointer()) and not storage.exists(layout.production_pointer())


def test_crash_between_table_and_pointer_leaves_the_old_one_readable(storage, s3_server, make_run):
    s = make_run(storage, "r1")
    run_evaluate(s, run_id="r1")
    run_publish(s, run_id="r1", date="2026-11-25")
    old = load_latest(s).collect()
    make_run(storage, "r2", seed=5)
    run_evaluate(s, run_id="r2")
    proxy = FaultyS3(s3_server.url)
    try:
        faulty = s.replace(s3_endpoint_url=proxy.url, s3_max_attempts=2)
        proxy.fail(r"_latest\.json")  # every write of the pointer (its staged key too) fails
        with pytest.raises(StorageError, match="_latest.json"):
            run_publish(faulty, run_id="r2", date="2026-11-26")
        assert proxy.failed
    finally:
        proxy.close()
    assert latest_pointer(s)["run_id"] == "r1"
    assert load_latest(s).collect().equals(old)  # the old table is still there and complete
    assert storage.get_json(layout.production_pointer())["run_id"] == "r1"  # the record was not moved ahead


def test_crash_between_pointer_and_production_record_compares_with_what_is_served(storage, s3_server, make_run):
    s = make_run(storage, "r1")
    run_evaluate(s, run_id="r1")
    run_publish(s, run_id="r1", date="2026-11-25")
    make_run(storage, "r2", seed=5)
    run_evaluate(s, run_id="r2")
    proxy = FaultyS3(s3_server.url)
    try:
        proxy.fail(r"production\.json")
        with pytest.raises(StorageError, match="production.json"):
            run_publish(s.replace(s3_endpoint_url=proxy.url, s3_max_attempts=1), run_id="r2", date="2026-11-26")
    finally:
        proxy.close()
    assert latest_pointer(s)["run_id"] == "r2" and storage.get_json(layout.production_pointer())["run_id"] == "r1"
    # the next evaluation compares with r2, the model readers are served, not with the stale record
    assert run_evaluate(s, run_id="r1")["metrics"]["production"]["run_id"] == "r2"
    run_publish(s, run_id="r2", date="2026-11-26")  # the retried task repairs the record
    assert storage.get_json(layout.production_pointer())["run_id"] == "r2"


def test_concurrent_publishes_of_one_date_leave_one_live_table(storage, s3_env, make_run):
    """10 publishers of different runs race for one date's pointer (CLI processes, as a second
    deployment or a manual run next to the nightly one would): the pointer always names an existing
    table, every publisher either wins or fails with a clear conflict, and losers leave nothing."""
    s = make_run(storage, "r0")
    run_evaluate(s, run_id="r0")
    for n in range(1, 10):  # nine more complete runs (same training set and model, other ids)
        storage.copy_prefix("runs/r0/", f"runs/r{n}/")
    env = {**os.environ, **s3_env, "NCF_PUBLISH_K": "20", "NCF_THREADS": "1"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ncf_tasks", "publish", "--run-id", f"r{n}", "--date", "2026-11-26"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(10)
    ]
    outs = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    codes = [code for code, _, _ in outs]
    assert set(codes) <= {0, 8} and 0 in codes, [(c, e[-500:]) for c, _, e in outs if c not in (0, 8)]
    for code, out, _err in outs:
        if code == 8:
            assert "lost the race" in json.loads(out.strip().splitlines()[-1])["message"]
    pointer = latest_pointer(s)
    assert storage.exists(pointer["files"][0]) and load_latest(s).select(pl.len()).collect().item() == pointer["rows"]
    losers = {f"r{n}" for n, c in enumerate(codes) if c == 8}
    left = storage.list_keys(layout.topk_partition("2026-11-26"))
    assert not [k for k in left if any(k == layout.topk_table("2026-11-26", r) for r in losers)], left
    assert storage.get_json(layout.production_pointer())["run_id"] == pointer["run_id"]  # record and pointer agree


def test_publish_date_far_in_the_future_is_refused(storage, make_run):
    s = make_run(storage, "r1")
    run_evaluate(s, run_id="r1")
    with pytest.raises(ConfigError, match="publish date 2099-01-01 lies after"):
        run_publish(s, run_id="r1", date="2099-01-01")
    assert not storage.list_keys("recs/")


def test_gate_rejection_blocks_publish_unless_forced(storage, make_run):
    s = make_run(storage, "r1", gate_min_lift=0.99)
    ev = run_evaluate(s, run_id="r1")
    assert not ev["gate"]["publish"] and "required lift 0.99" in ev["gate"]["reasons"][0]
    with pytest.raises(GateRejected, match="set force_publish=true"):
        run_publish(s, run_id="r1", date="2026-11-26")
    assert not storage.exists(layout.latest_pointer())
    forced = s.replace(force_publish=True)
    ev = run_evaluate(forced, run_id="r1")
    assert ev["gate"]["forced"] and "FORCED" in ev["gate"]["reasons"][-1]
    assert run_publish(forced, run_id="r1", date="2026-11-26")["forced"] is True


def test_retention_never_deletes_the_live_partition(storage, make_run):
    s = make_run(storage, "r1", retention_days=30)
    run_evaluate(s, run_id="r1")
    run_publish(s, run_id="r1", date="2026-10-01")
    old_key = latest_pointer(s)["files"][0]
    run_publish(s, run_id="r1", date="2026-11-26")  # 56 days later: 2026-10-01 is out of retention
    live = latest_pointer(s)["files"][0]
    assert storage.exists(live) and not storage.exists(old_key)
    run_publish(s, run_id="r1", date="2026-09-01")  # a backdated republish: it is live, so it stays
    assert storage.exists(latest_pointer(s)["files"][0])


def test_production_is_rescored_through_its_own_id_maps(storage, make_run):
    s = make_run(storage, "r1")
    run_evaluate(s, run_id="r1")
    run_publish(s, run_id="r1", date="2026-11-25")
    make_run(storage, "r2", drop_users=20)  # same tastes, but every user index differs from r1's
    ev = run_evaluate(s, run_id="r2")
    prod = ev["metrics"]["production"]
    assert prod["hr@10"] > ev["metrics"]["popularity"]["hr@10"] - 0.1
    # a run whose users and items production never saw: every candidate scores -inf, HR 0
    rename = lambda df, col: df.with_columns(("new-" + pl.col(col)).alias(col))  # noqa: E731
    for f, col in (("users", "user_id"), ("items", "item_id")):
        storage.write_parquet(rename(storage.read_parquet(f"runs/r2/{f}.parquet"), col), f"runs/r2/{f}.parquet")
    assert run_evaluate(s, run_id="r2")["metrics"]["production"]["hr@10"] == 0.0


def test_id_translation_partial_overlap():
    ours = pl.DataFrame({"user_idx": [0, 1, 2], "user_id": ["a", "b", "c"]})
    theirs = pl.DataFrame({"user_idx": [0, 1], "user_id": ["c", "a"]})
    assert id_translation(ours, theirs).tolist() == [1, -1, 0]


def test_gate_decisions():
    def m(new, pop, prod=None):
        models = {"neumf": {"hr@10": new}, "popularity": {"hr@10": pop}}
        if prod is not None:
            models["production"] = {"hr@10": prod}
        return {"k": 10, "models": models}

    from ncf_tasks.config import Settings

    s = Settings.from_env(env={}, gate_min_lift=0.05, gate_tolerance=0.01)
    assert decide(s, m(0.6, 0.5))["publish"]
    assert not decide(s, m(0.54, 0.5))["publish"]
    assert decide(s, m(0.6, 0.5, prod=0.605))["publish"]  # within tolerance of production
    assert not decide(s, m(0.6, 0.5, prod=0.62))["publish"]  # worse than production
    d = decide(s.replace(force_publish=True), m(0.54, 0.5))
    assert d["publish"] and d["forced"] and not d["passed"]
