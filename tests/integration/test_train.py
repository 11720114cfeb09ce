"""Training through the real storage path on a small synthetic set with planted taste groups."""

import pytest
import torch
from helpers import PLANTED, planted_set

from ncf_tasks.artifacts import RunArtifacts
from ncf_tasks.errors import NoDataError
from ncf_tasks.metrics import held_out_rank, hit_ndcg
from ncf_tasks.train import run_train

pytestmark = pytest.mark.slow
FAST = dict(epochs=4, batch_size=512, factors=8, mlp_layers=(32, 16, 8), threads=2, seed=1)


@pytest.fixture
def run(storage):
    return planted_set(storage, "r", storage.settings.replace(**FAST), **PLANTED)


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


class Killed(Exception):
    """The task's process dying mid-training (a worker lost, a timeout)."""


def kill_after(monkeypatch, epochs: int) -> None:
    """The next training dies after ``epochs`` epochs of either phase (its checkpoint of the last one written)."""
    from ncf_tasks import fitting

    real, done = fitting.train_epoch, []

    def epoch(*args, **kwargs):
        if len(done) == epochs:
            raise Killed(f"killed after {epochs} epochs")
        done.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(fitting, "train_epoch", epoch)


def test_resume_after_interruptions_equals_an_uninterrupted_run(storage, run, monkeypatch):
    """Killed in selection, then killed again in the refit: each retry resumes from the checkpoint, and the
    result (histories of both phases, the published weights) is bit-identical to an uninterrupted run."""
    straight = run_train(run, run_id="r", model="gmf")
    assert straight["epochs"] == 4 and 2 <= straight["refit_epochs"] <= 4, straight
    full = storage.get_json("runs/r/gmf_history.json")
    final = RunArtifacts(storage, "r").load_model_artifact("gmf")["state_dict"]
    storage.delete_prefix("runs/r/gmf")
    for epochs in (2, 3):  # selection epochs 1-2; then 3-4 and the refit's first
        with monkeypatch.context() as m:
            kill_after(m, epochs)
            with pytest.raises(Killed):
                run_train(run, run_id="r", model="gmf")
        state = RunArtifacts(storage, "r").load_checkpoint("gmf")["state"]
        assert (state["epoch"], "refit" in state) == ((2, False) if epochs == 2 else (4, True))
    resumed = run_train(run, run_id="r", model="gmf")
    again = storage.get_json("runs/r/gmf_history.json")
    strip = lambda h: [(e["epoch"], e["loss"], e.get("val_hr@10")) for e in h]  # noqa: E731
    assert strip(again["epochs"]) == strip(full["epochs"]) and resumed["val_hr@10"] == straight["val_hr@10"]
    assert strip(again["refit"]["history"]) == strip(full["refit"]["history"])
    again_final = RunArtifacts(storage, "r").load_model_artifact("gmf")["state_dict"]
    assert all(torch.equal(final[n], again_final[n]) for n in final)


def test_refit_repeats_the_chosen_epochs_on_train_and_validation(storage, run, monkeypatch):
    """Issue 15: the model evaluated and published is trained again from the start for the chosen number of
    epochs on train + validation positives; the selected one is kept, and NeuMF's selection fuses the selected
    GMF and MLP (its validation figures never see validation items) while its refit fuses the refit ones.
    A task killed after its refit resumes without re-reading the selected parts."""
    from ncf_tasks.metrics import evaluate_model
    from ncf_tasks.models import NeuMF

    results = {kind: run_train(run, run_id="r", model=kind) for kind in ("gmf", "mlp", "neumf")}
    arts = RunArtifacts(storage, "r")
    data, manifest = arts.load_data(), arts.manifest()
    for kind, res in results.items():
        hist = storage.get_json(f"runs/r/{kind}_history.json")
        refit = hist["refit"]
        assert res["refit_epochs"] == refit["epochs"] == res["best_epoch"] == len(refit["history"]), (kind, res)
        assert refit["positives"] == manifest.n_train + manifest.n_valid
        final, selected = arts.load_model_artifact(kind), arts.load_model_artifact(kind, selected=True)
        assert final["refit"] == {"epochs": res["best_epoch"], "positives": refit["positives"]}
        assert final["validation"] == selected["validation"] and selected["refit"] is None
        if res["best_epoch"]:
            assert any(not torch.equal(final["state_dict"][n], selected["state_dict"][n]) for n in final["state_dict"])
    sel = {kind: arts.load_model(kind, selected=True)[0] for kind in ("gmf", "mlp")}
    fused = NeuMF.from_pretrained(sel["gmf"], sel["mlp"], run.alpha).eval()
    hr, _ = evaluate_model(fused, data.valid_users, data.valid_candidates, run.eval_k)
    assert storage.get_json("runs/r/neumf_history.json")["init"]["val_hr@10"] == pytest.approx(hr, abs=1e-6)

    # killed after the refit's epochs, before its model was saved: selection is over, so the retry builds only
    # the refit's model (it no longer needs the selected parts) and ends with the same weights
    final = arts.load_model_artifact("neumf")["state_dict"]
    storage.delete_prefix("runs/r/neumf")
    real_save = RunArtifacts.save_model

    def save_model(self, model, *args, selected=False, **kwargs):
        if not selected:
            raise Killed("killed before the refit model was saved")
        return real_save(self, model, *args, selected=selected, **kwargs)

    with monkeypatch.context() as m:
        m.setattr(RunArtifacts, "save_model", save_model)
        with pytest.raises(Killed):
            run_train(run, run_id="r", model="neumf")
    assert arts.load_checkpoint("neumf")["state"]["refit"]["epoch"] == results["neumf"]["best_epoch"]
    storage.delete(["runs/r/gmf_selected.pt", "runs/r/mlp_selected.pt"])
    resumed = run_train(run, run_id="r", model="neumf")
    assert {x: resumed[x] for x in ("val_hr@10", "best_epoch", "refit_epochs")} == {
        x: results["neumf"][x] for x in ("val_hr@10", "best_epoch", "refit_epochs")
    }
    again = arts.load_model_artifact("neumf")["state_dict"]
    assert all(torch.equal(final[n], again[n]) for n in final)


def test_refit_off_keeps_the_best_epoch_model(storage, run):
    res = run_train(run.replace(refit=False), run_id="r", model="gmf")
    assert res["refit_epochs"] is None and not storage.exists("runs/r/gmf_selected.pt")
    art = RunArtifacts(storage, "r").load_model_artifact("gmf")
    assert art["refit"] is None and art["epoch"] == res["best_epoch"]
    with pytest.raises(NoDataError, match=r"runs/r/gmf_selected\.pt, which gmf writes when trained with refit on"):
        run_train(run, run_id="r", model="neumf")


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
