"""Training through the real storage path on a small synthetic set with planted taste groups."""

import pytest
import torch

from conftest import planted_set

from ncf_tasks.errors import NoDataError
from ncf_tasks.metrics import held_out_rank, hit_ndcg
from ncf_tasks.artifacts import RunArtifacts
from ncf_tasks.train import run_train

pytestmark = pytest.mark.slow
FAST = dict(epochs=4, batch_size=512, factors=8, mlp_layers=(32, 16, 8), threads=2, seed=1)


@pytest.fixture
def run(storage):
    return planted_set(storage, "r", storage.settings.replace(**FAST), users=400, items=300, days=5,
                       events_per_day=3000, groups=6, seed=2)


def popularity_hr(storage, k=10):
    data = RunArtifacts(storage, "r").load_data()
    counts = torch.bincount(data.train_items, minlength=data.n_items).float()
    return hit_ndcg(held_out_rank(counts[data.valid_candidates]), k)[0]


def test_planted_structure_is_learned_well_above_popularity(storage, run):
    pop = popularity_hr(storage)
    gmf = run_train(run, run_id="r", model="gmf")
    mlp = run_train(run, run_id="r", model="mlp")
    neumf = run_train(run, run_id="r", model="neumf")
    assert gmf["val_hr@10"] > pop + 0.05 and mlp["val_hr@10"] > pop + 0.03
    assert neumf["val_hr@10"] > pop + 0.03  # "NeuMF best" is a quality claim: benchmarks/quality.py
    hist = storage.get_json("runs/r/gmf_history.json")
    assert [h["epoch"] for h in hist["epochs"]] == [1, 2, 3, 4] and hist["epochs"][0]["samples_per_s"] > 0
    art = torch.load(__import__("io").BytesIO(storage.get_bytes("runs/r/neumf.pt")), weights_only=True)
    assert art["id_maps"] == {"users": "runs/r/users.parquet", "items": "runs/r/items.parquet"} and art["state_dict"]


def test_resume_after_interruption_equals_an_uninterrupted_run(storage, run):
    straight = run_train(run, run_id="r", model="gmf")
    full = storage.get_json("runs/r/gmf_history.json")["epochs"]
    storage.delete_prefix("runs/r/gmf")
    run_train(run.replace(epochs=2), run_id="r", model="gmf")     # the task is killed after epoch 2 ...
    resumed = run_train(run, run_id="r", model="gmf")              # ... and retried
    again = storage.get_json("runs/r/gmf_history.json")["epochs"]
    strip = lambda h: [(e["epoch"], e["loss"], e["val_hr@10"]) for e in h]  # noqa: E731
    assert strip(again) == strip(full) and resumed["val_hr@10"] == straight["val_hr@10"]


def test_cpu_runs_are_repeatable_under_a_seed(storage, run):
    a = run_train(run, run_id="r", model="mlp")
    storage.delete_prefix("runs/r/mlp")
    b = run_train(run, run_id="r", model="mlp")
    assert a["val_hr@10"] == b["val_hr@10"] and a["best_epoch"] == b["best_epoch"]


def test_neumf_pretraining_needs_gmf_and_mlp(storage, run):
    with pytest.raises(NoDataError, match=r"NeuMF with pretraining needs s3://.*/runs/r/gmf\.pt: train gmf"):
        run_train(run, run_id="r", model="neumf")
    assert run_train(run.replace(pretrain=False, epochs=1), run_id="r", model="neumf")["epochs"] == 1


def test_fine_tuning_raises_validation_hr_above_the_fused_start(storage, run):
    """Issue 15: with the default fine-tuning (a fresh Adam at neumf_lr, lazy L2), NeuMF's training improves on
    its fused α·GMF + (1−α)·MLP start, and the history records that start next to the best epoch."""
    run_train(run, run_id="r", model="gmf")
    run_train(run, run_id="r", model="mlp")
    neumf = run_train(run.replace(epochs=8), run_id="r", model="neumf")
    assert neumf["best_epoch"] > 0 and neumf["val_hr@10"] > neumf["start_val_hr"], neumf
    hist = storage.get_json("runs/r/neumf_history.json")
    assert hist["init"]["fused"] and hist["init"]["val_hr@10"] == pytest.approx(neumf["start_val_hr"], abs=1e-5)
    assert hist["init"]["val_ndcg@10"] is not None and hist["best_epoch"] == neumf["best_epoch"]
