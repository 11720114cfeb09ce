"""A run's artifacts through the real endpoint: typed manifest, binding to the training set, errors."""

import polars as pl
import pytest
import torch
from helpers import cli, last_json

from ncf_tasks.artifacts import RunArtifacts
from ncf_tasks.build import build_training_set, write_training_set
from ncf_tasks.errors import DataError, NoDataError
from ncf_tasks.evaluate import run_evaluate
from ncf_tasks.generate import SyntheticSpec, synthesize
from ncf_tasks.models import GMF
from ncf_tasks.rundata import Manifest


def build(storage, run_id="r", users=80, seed=1):
    s = storage.settings.replace(factors=4, mlp_layers=(8, 4), threads=2, eval_negatives=20)
    ev = synthesize(SyntheticSpec(users=users, items=60, days=2, events_per_day=800, seed=seed))
    return write_training_set(storage, run_id, build_training_set(ev, s), s, end_date="2026-11-26"), s


def test_manifest_is_typed_and_round_trips(storage):
    m, _ = build(storage)
    run = RunArtifacts(storage, "r")
    back = RunArtifacts(storage, "r").manifest()
    assert back == m and isinstance(back, Manifest) and len(m.digest) == 64
    assert m.files["train"] == run.key("train.parquet") and m.end_date == "2026-11-26"
    data = run.load_data()
    assert (data.n_users, data.train_users.numel()) == (m.n_users, m.n_train)
    with pytest.raises(DataError, match=r"manifest\.json: manifest lacks \['n_items'"):
        Manifest.from_dict({k: v for k, v in m.to_dict().items() if k != "n_items"}, "s3://b/runs/r/manifest.json")
    with pytest.raises(NoDataError, match="run build for nope first"):
        RunArtifacts(storage, "nope").manifest()


def test_rebuilding_a_run_id_discards_its_checkpoint_and_refuses_its_models(storage, caplog):
    m1, s = build(storage)
    run = RunArtifacts(storage, "r")
    net = GMF(m1.n_users, m1.n_items, 4)
    run.save_checkpoint("gmf", {"model": net.state_dict(), "state": {"epoch": 3}})
    run.save_model("gmf", net.state_dict(), s, epoch=3, validation={})
    assert run.load_checkpoint("gmf")["state"] == {"epoch": 3} and run.load_model("gmf")[1]["epoch"] == 3

    m2, _ = build(storage, users=90, seed=2)  # the lake changed; the run is rebuilt under the same id
    assert m2.digest != m1.digest
    run = RunArtifacts(storage, "r")
    with caplog.at_level("WARNING"):
        assert run.load_checkpoint("gmf") is None  # never resumed ...
    assert "discarding stale checkpoint" in caplog.text and not storage.exists(run.key("gmf_checkpoint.pt"))
    with pytest.raises(NoDataError, match=r"gmf\.pt was trained on another training set .* train gmf for run r again"):
        run.load_model("gmf")  # ... and no stale model is used (evaluate, NeuMF fusion, publish)
    assert run.load_model("gmf", current=False)[1]["epoch"] == 3  # production re-scoring reads other runs' models


def test_evaluate_without_a_model_is_no_data_with_a_json_line(storage, s3_env):
    build(storage)
    with pytest.raises(NoDataError, match=r"neumf\.pt is missing: train neumf for run r first"):
        run_evaluate(storage.settings, run_id="r")
    r = cli(s3_env, "evaluate", "--run-id", "r")
    assert r.returncode == 3 and last_json(r)["error"] == "NoDataError" and "Traceback" not in r.stderr


def test_a_corrupt_model_file_is_named(storage):
    build(storage)
    storage.put_bytes("runs/r/gmf.pt", b"not a torch file")
    with pytest.raises(DataError, match=r"runs/r/gmf\.pt: not a readable torch artifact"):
        RunArtifacts(storage, "r").load_model("gmf")


def test_id_maps_and_tensors_agree(storage):
    build(storage)
    run = RunArtifacts(storage, "r")
    maps = run.id_maps()
    data = run.load_data()
    assert maps["users"].height == data.n_users and maps["items"]["item_idx"].to_list() == list(range(data.n_items))
    assert isinstance(maps["users"], pl.DataFrame) and data.valid_candidates.dtype == torch.int64
