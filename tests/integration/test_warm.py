"""Warm start from the model in production: the decision, the carried embeddings, the recent window."""

import io

import polars as pl
import pytest
import torch

from ncf_tasks import layout, warm
from ncf_tasks.artifacts import RunArtifacts
from ncf_tasks.build import build_training_set, write_training_set
from ncf_tasks.evaluate import run_evaluate
from ncf_tasks.generate import SyntheticSpec, synthesize
from ncf_tasks.train import run_train

pytestmark = pytest.mark.slow
FAST = dict(epochs=3, batch_size=512, factors=8, mlp_layers=(16, 8), threads=2, seed=1, warm_epochs=2)
SPEC = dict(
    users=300, items=200, days=6, events_per_day=2500, groups=5, taste_strength=0.9, seed=4, end_date="2026-11-26"
)


def write_set(storage, run_id, events, settings, record=None):
    write_training_set(
        storage, run_id, build_training_set(events, settings), settings, end_date="2026-11-26", warm=record
    )


def test_decide_follows_the_setting_the_pointer_and_the_cold_weekday(storage):
    s = storage.settings.replace(warm_start=True, warm_window_days=3, cold_weekday=6)
    assert warm.decide(storage, s.replace(warm_start=False), "2026-11-26") is None
    assert warm.decide(storage, s, "2026-11-26") is None  # nothing published yet
    storage.put_json(layout.latest_pointer(), {"run_id": "prod"})
    assert warm.decide(storage, s, "2026-11-26") == {"from_run": "prod", "since": "2026-11-24"}  # a Thursday
    assert warm.decide(storage, s, "2026-11-29") is None  # a Sunday: the weekly cold retrain
    assert warm.decide(storage, s.replace(cold_weekday=-1), "2026-11-29")["from_run"] == "prod"


def test_warm_run_carries_embeddings_by_id_and_trains_on_the_recent_window(storage):
    s = storage.settings.replace(**FAST)
    events = synthesize(SyntheticSpec(**SPEC))
    # production knew every user but u000000..u000019 and every item but the last ten; it knew u999 (gone now)
    prod_events = events.filter((pl.col("user_id") >= "u000020") & (pl.col("item_id") < "i000190"))
    gone = prod_events.filter(pl.col("user_id") == "u000020").with_columns(pl.lit("u999").alias("user_id"))
    write_set(storage, "prod", pl.concat([prod_events, gone]), s)
    for m in ("gmf", "mlp", "neumf"):
        run_train(s, run_id="prod", model=m)
    record = {"from_run": "prod", "since": "2026-11-25"}
    write_set(storage, "now", events, s, record)
    out = {m: run_train(s, run_id="now", model=m) for m in ("gmf", "mlp", "neumf")}

    assert all(o["warm_from"] == "prod" and o["epochs"] <= 2 for o in out.values()), out
    hist = storage.get_json("runs/now/gmf_history.json")
    info = hist["init"]["warm"]
    assert info["new_users"] == 20 and info["new_items"] == 10 and info["dropped_users"] == 1, info
    assert not storage.get_json("runs/now/neumf_history.json")["init"]["fused"]  # NeuMF carried, not re-fused
    # what the carried model started from: production's rows, found by id, and production's dense layers
    carried, _ = warm.carry("gmf", RunArtifacts(storage, "now").load_data(), s, RunArtifacts(storage, "now"), record)
    # production refit (the default): what is carried is its selected model, trained without the validation
    # items, which are this run's validation items too for users with nothing newer
    assert RunArtifacts(storage, "prod").has_model("gmf", selected=True)
    old, _ = RunArtifacts(storage, "prod").load_model("gmf", current=False, selected=True)
    ours, theirs = RunArtifacts(storage, "now").id_maps()["users"], RunArtifacts(storage, "prod").id_maps()["users"]
    pair = ours.join(theirs, on="user_id", suffix="_prod").filter(pl.col("user_id") == "u000123")
    assert torch.equal(carried.user.weight[pair["user_idx"][0]], old.user.weight[pair["user_idx_prod"][0]])
    assert torch.equal(carried.out.weight, old.out.weight)
    # a warm run never ends below where it started on validation (the carried model is epoch 0)
    assert out["neumf"]["val_hr@10"] >= out["neumf"]["start_val_hr"]
    # the recent window: only interactions since 2026-11-25 were trained on
    train = storage.read_parquet(RunArtifacts(storage, "now").manifest().files["train"])
    recent = train.filter(pl.col("event_ts") >= pl.datetime(2026, 11, 25, time_zone="UTC")).height
    assert 0 < recent < train.height
    run = RunArtifacts(storage, "now")
    full, window = run.load_data(), warm.recent(run, run.load_data(), "2026-11-25")
    assert window.train_users.numel() == recent
    # each kept positive keeps its place before its user's latest (the recency weights, fitting.recency_weights)
    kept = torch.from_numpy(
        train.select(pl.col("event_ts") >= pl.datetime(2026, 11, 25, time_zone="UTC")).to_series().to_numpy()
    )
    assert torch.equal(window.train_recency, full.train_recency[kept])
    # the report: the warm start in the training table, and both runs' curves by training time
    run_evaluate(s, run_id="now")
    page = storage.get_bytes("runs/now/report.html").decode()
    assert "warm start from run prod: " in page and "NeuMF validation HR@10 by training time" in page
    assert "the run it started from" in page


def test_a_production_model_of_another_shape_means_a_cold_start(storage):
    s = storage.settings.replace(**FAST)
    events = synthesize(SyntheticSpec(**SPEC))
    write_set(storage, "prod", events, s)
    run_train(s, run_id="prod", model="gmf")
    wider = s.replace(factors=16)
    write_set(storage, "now", events, wider, {"from_run": "prod", "since": "2026-11-25"})
    out = run_train(wider, run_id="now", model="gmf")
    assert out["warm_from"] is None and out["epochs"] == 3  # cold: all epochs, all history
    art = torch.load(io.BytesIO(storage.get_bytes("runs/now/gmf.pt")), weights_only=True)
    assert art["factors"] == 16
