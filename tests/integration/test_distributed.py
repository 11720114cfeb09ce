"""Data-parallel training (``train_procs``): two gloo ranks under torchrun, against one process."""

import pytest
from helpers import PLANTED, planted_set

from ncf_tasks.errors import NoDataError
from ncf_tasks.train import run_train

pytestmark = pytest.mark.slow
# recency_boost 0: with the boost, the MLP drifts from one process by rounding alone after 2 epochs here (the
# per-sample weights change which sums are rounded how), which hides what this test checks; the boost across
# ranks is checked on GMF, which rounding does not move. neumf_dropout 0: dropout draws its masks per rank, so
# two ranks cannot draw the one process's
FAST = dict(
    epochs=2, batch_size=512, factors=8, mlp_layers=(32, 16, 8), threads=1, seed=1, recency_boost=0.0, neumf_dropout=0.0
)


@pytest.fixture
def run(storage):
    return planted_set(storage, "r", storage.settings.replace(**FAST), **PLANTED)


def test_two_gloo_processes_train_what_one_trains(storage, run, monkeypatch, tmp_path):
    """Two ranks split every batch of the one-process run (same permutation, negatives and steps): the
    same training, epoch by epoch, up to the order of float sums (measured: losses equal to 6 decimals,
    validation HR equal); the whole pipeline after it (NeuMF fused from the data-parallel GMF and MLP)
    works, and rank 0 alone wrote. GMF trains with the default recency boost: each rank weighs its half of
    every batch with the one-process weights, so every epoch's loss and the validation HR are the same.
    The ranks find ncf_tasks where this process found it, without PYTHONPATH and from another folder (a
    benchmark run from benchmarks/ puts it on sys.path). One launch per model for all of it: a launch
    starts two interpreters that import torch (seconds each on 2 cores)."""
    monkeypatch.delenv("PYTHONPATH", raising=False)
    monkeypatch.chdir(tmp_path)
    per_model = {"gmf": run.replace(recency_boost=4.0), "mlp": run, "neumf": run}
    one = {m: run_train(s, run_id="r", model=m) for m, s in per_model.items()}
    storage.copy_prefix("runs/r/", "runs/d/")
    for m in per_model:
        storage.delete_prefix(f"runs/d/{m}")
    two = {m: run_train(s.replace(train_procs=2), run_id="d", model=m) for m, s in per_model.items()}
    for m in per_model:
        assert two[m]["procs"] == 2 and two[m]["epochs"] >= 1, two[m]
        assert abs(two[m]["val_hr@10"] - one[m]["val_hr@10"]) <= 0.01, (m, one[m], two[m])
        hist, ref = storage.get_json(f"runs/d/{m}_history.json"), storage.get_json(f"runs/r/{m}_history.json")
        assert hist["procs"] == 2 and hist["batch_size"] == 512 and hist["best_epoch"] == ref["best_epoch"]
        assert len(hist["epochs"]) == len(ref["epochs"]), (hist["epochs"], ref["epochs"])
        for a, b in zip(hist["epochs"], ref["epochs"]):  # selection: the epochs that decide the model
            assert a["loss"] == pytest.approx(b["loss"], rel=1e-3), (m, hist["epochs"], ref["epochs"])
    assert storage.exists("runs/d/neumf.pt") and storage.exists("runs/d/neumf_checkpoint.pt")
    # the boost across ranks: GMF's numbers are those of one process to rounding, and the boost is in them
    assert two["gmf"]["val_hr@10"] == one["gmf"]["val_hr@10"]
    hist, ref = storage.get_json("runs/d/gmf_history.json"), storage.get_json("runs/r/gmf_history.json")
    assert [e["loss"] for e in hist["epochs"]] == pytest.approx([e["loss"] for e in ref["epochs"]], rel=1e-5)
    storage.copy_prefix("runs/d/", "runs/u/")
    storage.delete_prefix("runs/u/gmf")
    run_train(run, run_id="u", model="gmf")  # without the boost: another training
    assert [e["loss"] for e in storage.get_json("runs/u/gmf_history.json")["epochs"]] != [
        e["loss"] for e in ref["epochs"]
    ]


def test_a_failing_rank_fails_the_task_with_a_clear_error(storage, run):
    """A rank that raises (here: NeuMF with pretraining but no GMF/MLP trained) fails the task with the rank's
    own error class (its exit code and retry decision: NoDataError, exit 3), naming the rank, the model, the
    run and the process count; nothing is written."""
    with pytest.raises(
        NoDataError,
        match=r"train gmf for run r first.*rank \d of the distributed training of neumf "
        r"for run r on 2 processes",
    ):
        run_train(run.replace(train_procs=2), run_id="r", model="neumf")
    assert not storage.exists("runs/r/neumf.pt")


def test_a_ranks_storage_error_stays_retryable(storage, run):
    """A rank that meets a storage error fails the task with StorageError (exit 6, retried by the DAGs), not with
    an unretried DistributedTrainingFailed: the ranks' errors come back by class."""
    from ncf_tasks.errors import StorageError

    with pytest.raises(StorageError, match=r"no-such-bucket-here.*rank \d of the distributed training of gmf"):
        run_train(run.replace(train_procs=2, bucket="no-such-bucket-here"), run_id="r", model="gmf")
