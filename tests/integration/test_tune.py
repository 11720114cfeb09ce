"""Tuning and the tuned profile (issue 15): a real study against the moto S3 server, the profile's round trip
through build (recorded) and train (applied), explicit overrides, a resumed study."""

import io

import polars as pl
import pytest
import torch
from helpers import planted_set

from ncf_tasks import layout
from ncf_tasks.build import run_build
from ncf_tasks.errors import DataError
from ncf_tasks.generate import SyntheticSpec, run_generate
from ncf_tasks.ingest import run_ingest
from ncf_tasks.train import run_train
from ncf_tasks.tune import min_gain, run_tune
from ncf_tasks.validate import run_validate

pytestmark = pytest.mark.slow
FAST = dict(epochs=3, patience=2, batch_size=512, factors=8, mlp_layers=(16, 8), threads=2, seed=3)
DAY = "2026-11-26"


@pytest.fixture
def built(storage):
    return planted_set(
        storage,
        "t",
        storage.settings.replace(**FAST),
        users=300,
        items=200,
        days=4,
        events_per_day=2500,
        groups=5,
        seed=4,
    )


def test_a_study_writes_trials_report_and_a_profile_that_beats_trial_zero(storage, built):
    out = run_tune(built, run_id="t", study="study-1", trials=3, timeout_s=600)
    assert out["trials"] == 3 and out["complete"] >= 1
    folder = layout.tuning_study("study-1")
    trials = pl.read_parquet(io.BytesIO(storage.get_bytes(folder + "trials.parquet")))
    assert trials["number"].to_list() == [0, 1, 2] and {"value", "param_factors", "param_l2"} <= set(trials.columns)
    # trial 0 is today's settings (factors 8 is outside the space: the nearest choice, 16)
    assert trials.filter(pl.col("number") == 0)["param_factors"].item() == 16
    html = storage.get_bytes(folder + "report.html").decode()
    assert ("<b>Published</b>" in html) == out["published"] and 'id="decision"' in html
    assert "objective per trial" in html and 'id="trials"' in html and "<svg" in html
    prof = storage.get_json(folder + "profile.json")
    assert prof["version"] == "study-1" and prof["value"] == out["best_value"] and prof["run_id"] == "t"
    # a profile replaces the settings only past the noise of a validation HR: one standard error by default
    users = storage.get_json("runs/t/manifest.json")["report"]["valid_users"]
    assert prof["valid_users"] == users > 0
    assert prof["min_gain"] == pytest.approx(min_gain(prof["baseline_value"], users, 1.0), abs=1e-5)
    assert min_gain(0.75, 943, 1.0) == pytest.approx(0.0141, abs=1e-4)  # MovieLens 100K's validation users
    if out["published"]:
        assert prof["value"] - prof["baseline_value"] > prof["min_gain"]
        assert storage.get_json(layout.tuned_profile()) == prof
    else:
        assert not storage.exists(layout.tuned_profile())


def test_a_killed_study_resumes_from_its_saved_trials(storage, built):
    built = built.replace(tune_min_gain_se=100.0)  # no trial can beat trial 0 by 100 standard errors
    run_tune(built, run_id="t", study="s2", trials=2, timeout_s=600)
    saved = storage.get_json(layout.tuning_study("s2") + "trials.json")
    assert [t["number"] for t in saved] == [0, 1]
    out = run_tune(built, run_id="t", study="s2", trials=3, timeout_s=600)  # the retry of a killed task
    assert out["trials"] == 3
    again = storage.get_json(layout.tuning_study("s2") + "trials.json")
    assert again[:2] == saved  # the first two were re-added, not re-run
    assert not out["published"] and not storage.exists(layout.tuned_profile())


def _lake(storage, days=("2026-11-24", "2026-11-25", DAY)):
    run_generate(
        storage.settings,
        spec=SyntheticSpec(users=200, items=120, days=len(days), events_per_day=1500, end_date=days[-1]),
    )
    for d in days:
        run_ingest(storage.settings, date=d)
        run_validate(storage.settings, date=d)


def test_the_tuned_profile_round_trip(storage):
    """Written, picked up by build (recorded in the manifest), applied by train, beaten by an explicit value,
    ignored when tuned_profile is off."""
    _lake(storage)
    s = storage.settings.replace(epochs=1, batch_size=512, mlp_layers=(16, 8), threads=2)
    storage.put_json(
        layout.tuned_profile(), {"version": "v-test", "settings": {"factors": 12, "alpha": 0.3, "l2": 0.001}}
    )

    out = run_build(s, run_id="a", end_date=DAY)
    assert out["profile"] == "v-test"
    manifest = storage.get_json("runs/a/manifest.json")
    assert manifest["profile"]["applied"] == {"factors": 12, "alpha": 0.3, "l2": 0.001}
    assert storage.get_json("runs/a/config.json")["factors"] == 12
    run_train(s, run_id="a", model="gmf")  # s itself still says factors 64: the manifest's profile decides
    art = torch.load(io.BytesIO(storage.get_bytes("runs/a/gmf.pt")), weights_only=True)
    assert art["factors"] == 12

    run_build(s.replace(factors=24), run_id="b", end_date=DAY, explicit=["factors"])  # a trigger param
    assert storage.get_json("runs/b/manifest.json")["profile"]["applied"] == {"alpha": 0.3, "l2": 0.001}
    run_train(s.replace(factors=24), run_id="b", model="gmf")
    assert torch.load(io.BytesIO(storage.get_bytes("runs/b/gmf.pt")), weights_only=True)["factors"] == 24

    out = run_build(s.replace(tuned_profile=False), run_id="c", end_date=DAY)
    assert out["profile"] is None and storage.get_json("runs/c/manifest.json")["profile"] is None


def test_a_profile_with_an_untunable_setting_is_refused(storage):
    _lake(storage, days=(DAY,))
    storage.put_json(layout.tuned_profile(), {"version": "bad", "settings": {"bucket": "elsewhere"}})
    with pytest.raises(DataError, match=r"tuning/profile.json.*\['bucket'\] cannot be tuned"):
        run_build(storage.settings, run_id="x", end_date=DAY)


def test_a_trials_models_stop_after_tune_patience_not_patience(storage, built):
    """Inside a trial each model stops ``tune_patience`` epochs after its best (nightly runs wait ``patience``):
    with tune_patience 1, a trial's epochs are each model's best epoch + 1 pass, capped at ``epochs`` passes
    (NeuMF's fine-tuning epochs are quarter passes: ``neumf_epoch_fraction``)."""
    from ncf_tasks.fitting import epoch_limits

    s = built.replace(epochs=6, patience=50, tune_patience=1)
    run_tune(s, run_id="t", study="patience", trials=1, timeout_s=600)
    (trial,) = storage.get_json(layout.tuning_study("patience") + "trials.json")
    attrs = trial["user_attrs"]
    limits = {m: epoch_limits(m, s.replace(patience=1)) for m in ("gmf", "mlp", "neumf")}
    assert limits["neumf"] == (24, 4)
    expected = sum(min(attrs[f"{m}_best_epoch"] + p, until) for m, (until, p) in limits.items())
    assert attrs["epochs"] == expected < 6 + 6 + 24, attrs
