import os
import subprocess
import sys

import pytest
from helpers import ROOT

from ncf_tasks.config import GPU_NODES, Settings, describe
from ncf_tasks.errors import ConfigError


def test_defaults_are_the_papers_protocol():
    s = Settings.from_env(env={})
    assert (s.eval_negatives, s.train_negatives, s.mlp_layers, s.alpha, s.eval_k) == (99, 4, (64, 32, 16, 8), 0.5, 10)


def test_environment_is_parsed_by_type():
    s = Settings.from_env(
        env={
            "NCF_BUCKET": "recs",
            "NCF_EPOCHS": "7",
            "NCF_LR": "0.01",
            "NCF_PRETRAIN": "false",
            "NCF_MLP_LAYERS": "32,16,8",
            "NCF_ALLOWED_EVENT_TYPES": "view, click",
        }
    )
    assert (s.bucket, s.epochs, s.lr, s.pretrain, s.mlp_layers) == ("recs", 7, 0.01, False, (32, 16, 8))
    assert s.allowed_event_types == ("view", "click")


def test_overrides_win_over_environment_and_none_keeps():
    s = Settings.from_env(env={"NCF_EPOCHS": "7"}, epochs=3, factors=None)
    assert s.epochs == 3 and s.factors == Settings().factors  # None keeps the default


@pytest.mark.parametrize(
    "env, match",
    [
        ({"NCF_EPOCHS": "many"}, r"epochs \(NCF_EPOCHS\) = 'many'"),
        ({"NCF_EPOCHS": "0"}, r"epochs \(NCF_EPOCHS\) = 0: must lie in \[1, 1000\]"),
        ({"NCF_DEVICE": "tpu"}, r"device \(NCF_DEVICE\) = 'tpu': allowed values are \['auto', 'cpu', 'cuda'\]"),
        ({"NCF_NEUMF_OPTIMIZER": "rmsprop"}, r"allowed values are \['sgd', 'adam'\]"),
        ({"NCF_MLP_LAYERS": "63,32"}, r"mlp_layers .*even first width"),
        (
            {"NCF_WAIVE_RULES": "schema"},
            r"waive_rules .*allowed values are \['volume_band', 'duplicate_rate', 'max_user_share'\]",
        ),
        (
            {"NCF_PUBLISH_MODEL": "ease"},
            r"publish_model \(NCF_PUBLISH_MODEL\) = 'ease': allowed values are \['neumf', 'best'\]",
        ),
        ({"NCF_EPOCH": "3"}, r"unknown environment variable\(s\) \['NCF_EPOCH'\]"),
        ({"NCF_BUCKET": ""}, r"bucket \(NCF_BUCKET\) must not be empty"),
    ],
)
def test_invalid_settings_fail_naming_the_setting(env, match):
    with pytest.raises(ConfigError, match=match):
        Settings.from_env(env=env)


@pytest.mark.parametrize(
    "env", [{"NCF_LR": "x" * 100_000}, {"NCF_MLP_LAYERS": "64," + "9" * 100_000 + "z"}, {"NCF_DEVICE": "y" * 100_000}]
)
def test_a_huge_bad_value_is_quoted_bounded(env):
    """The conversion's own message repeats the value (int(), float()): it is clipped as well."""
    with pytest.raises(ConfigError) as err:
        Settings.from_env(env=env)
    assert len(str(err.value)) < 700 and "(100,0" in str(err.value), str(err.value)[:300]


def test_unknown_override_is_refused():
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['epoch'\]"):
        Settings.from_env(env={}).replace(epoch=3)


def test_bool_param_is_not_an_integer():
    with pytest.raises(ConfigError, match="epochs"):
        Settings.from_env(env={}, epochs=True)


def test_secrets_never_printed():
    s = Settings.from_env(env={"NCF_S3_SECRET_ACCESS_KEY": "hunter2"})
    assert "hunter2" not in repr(s) and s.to_dict()["s3_secret_access_key"] == "***"
    assert s.to_dict(redact=False)["s3_secret_access_key"] == "hunter2"


def test_every_setting_is_documented():
    rows = describe()
    assert all(env.startswith("NCF_") and doc for env, _default, doc in rows)
    assert len(rows) == len({r[0] for r in rows})


def test_env_names_come_from_one_place_and_dag_settings_are_accepted():
    from ncf_tasks.config import env_name

    assert env_name("raw_user_col") == "NCF_RAW_USER_COL"
    s = Settings.from_env(
        env={
            "NCF_SCHEDULE": "30 3 * * *",
            "NCF_NOTIFIER": "a.b.C",
            "NCF_SGD_MOMENTUM": "0.5",
            "NCF_EMBEDDING_STD": "0.1",
            "NCF_VOLUME_HISTORY_DAYS": "14",
        }
    )
    assert (s.schedule, s.notifier, s.sgd_momentum, s.embedding_std, s.volume_history_days) == (
        "30 3 * * *",
        "a.b.C",
        0.5,
        0.1,
        14,
    )
    with pytest.raises(ConfigError, match=r"sgd_momentum \(NCF_SGD_MOMENTUM\) = 1.5: must lie in"):
        Settings.from_env(env={"NCF_SGD_MOMENTUM": "1.5"})


@pytest.mark.skipif(any(map(os.path.exists, GPU_NODES)), reason="this machine has a GPU device node")
def test_auto_device_without_a_gpu_node_is_the_cpu_without_importing_torch():
    """What keeps a CPU worker's publish shard free of torch's ~2 s import (``publish.Scorer``)."""
    code = (
        "import sys; from ncf_tasks.config import Settings; "
        "print(Settings.from_env(env={}).torch_device, 'torch' in sys.modules)"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env={**os.environ},
    )
    assert r.returncode == 0 and r.stdout.split() == ["cpu", "False"], r.stderr[-2000:]
