"""The error catalogue (``ncf_tasks/errors.py``), class by class, through the CLI: each class ends the command
with its exit code and a JSON error line naming it; the DAGs retry exactly the classes marked ``retried``.

Where a command can meet the error for real it does (a bad setting, an empty bucket, a broken JSON object, a
bad batch, a missing bucket, a gate rejection, a missing rules file); the three that need a race or a crashed
process (a lost conditional write, a dead rank, the base class) are raised by the stage function the command
calls, which is what the CLI's mapping sees either way.
"""

from __future__ import annotations

import json

import pytest
from helpers import ROOT

from ncf_tasks import __main__ as cli
from ncf_tasks import errors
from ncf_tasks.errors import CATALOGUE


def run_cli(capsys, *argv: str) -> tuple[int, dict]:
    code = cli.main(list(argv))
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _config(storage):
    return ["--set", "epochs=zero", "inventory"]


def _no_data(storage):
    return ["train", "--run-id", "never-built", "--model", "gmf"]


def _data(storage):
    storage.put_bytes("runs/r1/manifest.json", b'{"run_id": "r1", ')  # cut short by its writer
    return ["train", "--run-id", "r1", "--model", "gmf"]


def _validation(storage):
    bad = (ROOT / "tests" / "data" / "bad_batches" / "null_ids.jsonl").read_bytes()
    storage.put_bytes("raw/interactions/dt=2026-11-26/batch.jsonl", bad)
    assert cli.main(["ingest", "--date", "2026-11-26"]) == 0
    return ["validate", "--date", "2026-11-26"]


def _storage(storage):
    return ["--set", "bucket=no-such-bucket-here", "inventory"]


def _gate(storage):
    storage.put_json("runs/r1/metrics.json", {"gate": {"publish": False, "reasons": ["NeuMF lift 0.01 < 0.02"]}})
    return ["publish", "--run-id", "r1", "--date", "2026-11-26"]


def _raised_by_the_stage(cls):
    def arrange(storage, monkeypatch):
        def stage(settings, args):
            raise cls(f"{cls.__name__} raised by the stage")

        monkeypatch.setattr(cli, "_inventory", stage)
        return ["inventory"]

    return arrange


REAL = {
    "ConfigError": (_config, "epochs"),
    "NoDataError": (_no_data, "never-built"),
    "DataError": (_data, "manifest.json is not valid JSON"),
    "ValidationFailed": (_validation, "quarantined"),
    "StorageError": (_storage, "no-such-bucket-here"),
    "GateRejected": (_gate, "rejected by the gate"),
}


@pytest.mark.parametrize("name", sorted(CATALOGUE), ids=sorted(CATALOGUE))
def test_every_class_of_the_catalogue_through_the_cli(name, s3_env, storage, capsys, monkeypatch):
    for k, v in s3_env.items():
        monkeypatch.setenv(k, v)
    cls = CATALOGUE[name]
    if name in REAL:
        arrange, expected = REAL[name]
        argv = arrange(storage)
    else:
        argv, expected = _raised_by_the_stage(cls)(storage, monkeypatch), "raised by the stage"
    code, out = run_cli(capsys, *argv)
    assert (code, out["status"], out["error"]) == (cls.exit_code, "error", name), out
    assert expected in out["message"]
    assert f"{cls.exit_code} " in cli.__doc__ or f"{cls.exit_code}:" in cli.__doc__  # the CLI's docstring lists it


def test_a_missing_rules_file_is_a_configuration_error_not_a_quarantine(s3_env, storage, capsys, monkeypatch,
                                                                         tmp_path):  # fmt: skip
    from ncf_tasks.validation import suite

    for k, v in s3_env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(suite, "SUITE_PATH", tmp_path / "interactions.json")
    assert cli.main(["generate", "--end-date", "2026-11-26", "--days", "1", "--users", "30", "--items", "20",
                     "--events-per-day", "200"]) == 0  # fmt: skip
    assert cli.main(["ingest", "--date", "2026-11-26"]) == 0
    capsys.readouterr()
    code, out = run_cli(capsys, "validate", "--date", "2026-11-26")
    assert code == 2 and out["error"] == "ConfigError" and "interactions.json: cannot load" in out["message"]
    assert not storage.list_keys("lake/quarantine/")  # the day was not judged, so not quarantined


def test_wrong_arguments_of_generate_and_train_are_exit_2_not_tracebacks(s3_env, capsys, monkeypatch):
    for k, v in s3_env.items():
        monkeypatch.setenv(k, v)
    code, out = run_cli(capsys, "generate", "--end-date", "2026-11-26", "--users", "0")
    assert code == 2 and "users must be at least 1" in out["message"]
    from ncf_tasks.config import Settings
    from ncf_tasks.train import run_train

    with pytest.raises(errors.ConfigError, match="allowed values"):
        run_train(Settings.from_env(), run_id="r", model="svd")


def test_the_dags_retry_exactly_the_retried_classes():
    from ncf_common import RETRY_POLICY

    retried = {n for n, c in CATALOGUE.items() if c.retried}
    assert retried == {"StorageError"}
    rule = RETRY_POLICY.rules[0]
    assert {n for n, c in CATALOGUE.items() if rule.matches(c("x"))} == retried
