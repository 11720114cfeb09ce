"""One typed, frozen settings object for every stage.

Values come from the field defaults below, then from ``NCF_<FIELD>`` environment variables, then from
per-run overrides (Airflow params, CLI flags). Unknown keys and out-of-range values fail at start with
the setting's name, its environment variable and the accepted values — never halfway through a run.
The resolved settings are saved with every run (``runs/<run_id>/config.json``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ncf_tasks.errors import ConfigError, clip, quote

ENV_PREFIX = "NCF_"
SECRET_FIELDS = frozenset({"s3_secret_access_key", "s3_session_token"})
GPU_NODES = ("/dev/nvidiactl", "/dev/dxg")  # NVIDIA's device node on Linux; WSL 2's GPU node (CUDA needs one)


def env_name(setting: str) -> str:
    """The environment variable of a setting: ``factors`` -> ``NCF_FACTORS`` (the one place this is derived)."""
    return ENV_PREFIX + setting.upper()


def _f(default: Any, doc: str, **rules: Any) -> Any:
    """A field with its documentation and validation rules (choices, min, max) kept next to it."""
    kwargs: dict[str, Any] = {"metadata": {"doc": doc, **rules}}
    if isinstance(default, (list, dict, set)):
        raise TypeError("mutable defaults are not allowed; use tuples")
    return field(default=default, **kwargs)


@dataclass(frozen=True)
class Settings:
    # --- object storage -------------------------------------------------------------------------
    bucket: str = _f("ncf", "bucket that holds raw logs, the lake, runs and published tables")
    prefix: str = _f("", "key prefix inside the bucket ('' = bucket root); lets several pipelines share one bucket")
    s3_endpoint_url: str = _f("", "S3 endpoint URL; '' = AWS S3. MinIO or the embedded endpoint: http://127.0.0.1:PORT")
    s3_region: str = _f("us-east-1", "region of the bucket")
    s3_access_key_id: str = _f("", "access key; '' = boto3's default chain (env, profile, instance role)")
    s3_secret_access_key: str = _f("", "secret key matching s3_access_key_id (never logged)")
    s3_session_token: str = _f("", "optional session token for temporary credentials (never logged)")
    s3_max_attempts: int = _f(
        5, "boto3 attempts per request (standard retry mode) before a storage error", min=1, max=20
    )
    aws_conn_id: str = _f(
        "", "Airflow connection whose credentials the DAG passes to the stages; '' = environment/default chain"
    )

    # --- raw log schema: names of the raw columns mapped to the canonical ones ----------------
    raw_user_col: str = _f("user_id", "raw column holding the user id")
    raw_item_col: str = _f("item_id", "raw column holding the item id")
    raw_ts_col: str = _f("event_ts", "raw column holding the event time (ISO 8601 text or epoch number)")
    raw_event_type_col: str = _f("event_type", "optional raw column holding the event type")
    raw_value_col: str = _f("value", "optional raw column holding a numeric value (rating, watch time)")
    raw_ts_unit: str = _f("s", "unit of numeric epoch timestamps", choices=("s", "ms", "us"))
    id_normalization: str = _f(
        "NFC",
        "Unicode normalisation of user_id and item_id at ingest: NFC (default) makes an id typed with a "
        "precomposed letter and one with a combining accent one id (the same text in two byte forms, "
        "from different clients); none keeps the bytes as logged; NFKC also folds compatibility forms "
        "(full-width digits, ligatures), which may merge ids a catalogue keeps apart",
        choices=("NFC", "NFKC", "none"),
    )

    raw_max_file_mb: int = _f(
        4096,
        "largest raw file, once decompressed, that ingest reads (a task holds a file whole): "
        "a bigger one, or a gzip that expands past it (a decompression bomb), fails the day "
        "naming the file instead of the worker dying out of memory; write several files",
        min=1,
    )
    ingest_split_mb: int = _f(
        1024,
        "a day whose raw files exceed this many MB is ingested by mapped tasks (one per group "
        "of files, each writing one part of the partition, then a commit); smaller days by "
        "one task (BENCHMARKS.md)",
        min=1,
    )

    # --- dates ----------------------------------------------------------------------------------
    date_lag_days: int = _f(
        1, "the run keyed on logical date L processes the logs of L minus this many days", min=0, max=30
    )

    # --- validation -----------------------------------------------------------------------------
    max_id_length: int = _f(128, "longest accepted user_id / item_id", min=1, max=4096)
    ts_tolerance_minutes: int = _f(60, "event_ts may lie this far outside its day (late/early clocks)", min=0, max=1440)
    value_min: float = _f(-1e9, "smallest accepted value where present")
    value_max: float = _f(1e9, "largest accepted value where present")
    allowed_event_types: tuple[str, ...] = _f((), "accepted event types; () = any")
    min_rows: int = _f(1, "fewest rows a day may have after de-duplication", min=0)
    max_duplicate_rate: float = _f(
        0.5, "largest share of exact duplicate events a raw day may contain", min=0.0, max=1.0
    )
    volume_band: float = _f(
        5.0,
        "a day's rows must lie within [median/band, median*band] of the validated days "
        "among the volume_history_days before it",
        min=1.0,
    )
    volume_history_days: int = _f(
        7, "days before a date whose validated row counts make volume_band's median", min=1, max=366
    )
    volume_recent_days: int = _f(
        2,
        "volume_band applies to days at most this many days before now (the nightly feed); "
        "older days are backfills or historical loads, whose volume says nothing about an outage",
        min=0,
        max=3660,
    )
    min_users: int = _f(1, "fewest distinct users a day may have", min=0)
    max_user_share: float = _f(
        0.5,
        "soft rule: the largest share of a day's events one user may hold (a bot, a load test, a client "
        "replaying its queue); judged on the nightly feed's days (volume_recent_days), not on backfills, "
        "whose small historical days are often one user's; 1 = off",
        min=0.0,
        max=1.0,
    )
    min_items: int = _f(1, "fewest distinct items a day may have", min=0)
    waive_rules: tuple[str, ...] = _f(
        (),
        "soft validation rules accepted by an operator for this run",
        choices=("volume_band", "duplicate_rate", "max_user_share"),
    )

    # --- training set ---------------------------------------------------------------------------
    window_days: int = _f(0, "days of history ending at the processed date used for training; 0 = all", min=0)
    min_user_interactions: int = _f(3, "users with fewer distinct items are dropped (applied until stable)", min=1)
    min_item_interactions: int = _f(1, "items with fewer distinct users are dropped (applied until stable)", min=1)
    eval_negatives: int = _f(99, "sampled negatives ranked with each held-out item", min=1, max=10000)
    train_negatives: int = _f(4, "negatives sampled per train positive, fresh every epoch", min=1, max=100)
    seed: int = _f(42, "seed of every random choice in a run", min=0)

    # --- models and training --------------------------------------------------------------------
    factors: int = _f(
        64,
        "GMF predictive factors (embedding size); 64 beat 16 and 8 on ML-100K validation (BENCHMARKS.md)",
        min=1,
        max=1024,
    )
    mlp_layers: tuple[int, ...] = _f((64, 32, 16, 8), "MLP tower widths; the first is the concatenated embedding size")
    epochs: int = _f(30, "maximum epochs per model (early stopping usually ends sooner)", min=1, max=1000)
    patience: int = _f(
        5,
        "epochs without a better validation HR@10 before stopping early; 5 selected the same epoch of GMF, MLP "
        "and NeuMF as 6 in all 17 runs measured (three shared sets x 5 seeds, ML-1M-sized x 2), one pass "
        "sooner each (BENCHMARKS.md, issue 31)",
        min=1,
        max=1000,
    )
    batch_size: int = _f(
        0,
        "samples per optimiser step; 0 = auto: about 256 steps per epoch, a power of two in "
        "[1024, 16384] (2048 for ML-100K, 16384 for ML-1M)",
        min=0,
        max=1 << 22,
    )
    lr: float = _f(0.01, "Adam learning rate of GMF and MLP (tuned on ML-100K)", min=0.0, max=10.0)
    l2: float = _f(
        0.001,
        "L2 penalty on the embedding rows each batch reads (lazy: rows a batch does not read are "
        "left alone), per sample; 1e-3 chosen on ML-100K validation (BENCHMARKS.md)",
        min=0.0,
        max=1.0,
    )
    dense_decay: float = _f(
        0.0,
        "decoupled weight decay (AdamW; SGD's weight_decay) of the dense layers, not the embeddings",
        min=0.0,
        max=1.0,
    )
    dropout: float = _f(
        0.0,
        "dropout after each MLP tower layer while training MLP (and NeuMF without pretraining, or warm-started)",
        min=0.0,
        max=0.9,
    )
    neumf_dropout: float = _f(
        0.2,
        "dropout after each MLP tower layer while NeuMF is fine-tuned from its fused start: the pretrained parts "
        "stopped at their best epochs, and without it Last.fm's fine-tuning fell below the fused start within a "
        "pass. 0.2 chosen over 0, 0.3 and 0.5 on the validation splits of the three shared data sets, 5 seeds (BENCHMARKS.md, issue 31)",
        min=0.0,
        max=0.9,
    )
    recency_boost: float = _f(
        4.0,
        "extra loss weight of each user's latest train positives (with their negatives): "
        "the positive r places before the user's latest weighs 1 + recency_boost * "
        "0.5 ** (r / recency_halflife), weights scaled to mean 1; 0 = every positive alike. "
        "4 (half-life 5) raised NeuMF's validation HR@10 by 0.016 on ML-100K, 5 seeds "
        "(BENCHMARKS.md)",
        min=0.0,
        max=100.0,
    )
    recency_halflife: float = _f(
        5.0, "places from a user's latest interaction at which the recency boost halves", min=0.01, max=1e6
    )
    refit: bool = _f(
        True,
        "after each model's epoch count is chosen on validation, train it again from the start on "
        "train + validation positives for that many epochs; evaluate and publish use that model "
        "(its test item then follows what it saw, as the validation item did: BENCHMARKS.md)",
    )
    tune_patience: int = _f(
        3,
        "patience of each model within an ncf_tune trial (never more than patience): a trial's figure is "
        "its models' best validation HR, which a shorter wait reaches for all but the slowest settings, "
        "and a complete trial at ML-1M size ran 335-501 s with 6 (benchmarks/tune.py)",
        min=1,
        max=1000,
    )
    tune_min_gain_se: float = _f(
        1.0,
        "ncf_tune writes tuning/profile.json only when its best trial's validation HR@K "
        "beats trial 0's (the current settings) by more than this many standard errors "
        "of a validation HR, sqrt(p(1 - p) / validation users): the best of many noisy "
        "trials sits about one above its true value",
        min=0.0,
        max=100.0,
    )
    tuned_profile: bool = _f(
        True,
        "use the tuned profile tuning/profile.json (written by ncf_tune) when present; "
        "explicit params and --set still win",
    )
    warm_start: bool = _f(
        False,
        "initialise GMF, MLP and NeuMF from the model in production (embeddings carried over "
        "through the id maps) and train warm_epochs on the last warm_window_days; cold (from "
        "scratch, all history) when off, when nothing is published, and on cold_weekday",
    )
    warm_epochs: int = _f(
        4,
        "maximum epochs of a warm-started model (and never more than epochs; early stopping still applies)",
        min=1,
        max=1000,
    )
    warm_lr: float = _f(
        0.001, "Adam learning rate of GMF and MLP when warm-started (NeuMF uses neumf_lr)", min=0.0, max=10.0
    )
    warm_window_days: int = _f(
        7,
        "a warm-started model trains on the train interactions of the last this many days "
        "(every user keeps their recommendations: ids, splits and exclusions cover window_days)",
        min=1,
        max=3660,
    )
    cold_weekday: int = _f(
        6,
        "weekday of the data date (0 = Monday .. 6 = Sunday) on which a warm_start deployment "
        "retrains cold; -1 = never",
        min=-1,
        max=6,
    )
    pretrain: bool = _f(True, "initialise NeuMF from pretrained GMF and MLP (the paper's best setting)")
    ease_max_items: int = _f(
        16384,
        "largest catalogue (items of the training set) for which a run fits EASE^R, the closed-form "
        "baseline every run measures NeuMF against: it holds a few items x items matrices (about "
        "24 * items^2 bytes at its peak: 6.4 GB at 16,384) and its solve grows with items^3; above "
        "this the run skips it, says so in the log and the report, and the gate compares with "
        "popularity alone; 0 = never fit it",
        min=0,
    )
    ease_lambda_min: float = _f(
        1.0,
        "low end of EASE^R's L2 strength range: the lambda search starts at the decade in the middle of "
        "[ease_lambda_min, ease_lambda_max] and walks a decade at a time toward better validation HR@K "
        "(at most 3 decades past either end), then half a decade",
        min=1e-6,
    )
    ease_lambda_max: float = _f(10000.0, "high end of EASE^R's L2 strength range (see ease_lambda_min)", min=1e-6)
    ease_recency: bool = _f(
        True,
        "EASE^R weighs each positive with the recency weights of the neural models (recency_boost, "
        "recency_halflife): a weighted Gram matrix and weighted user rows (BENCHMARKS.md)",
    )
    alpha: float = _f(0.5, "weight of GMF in the fused NeuMF output layer", min=0.0, max=1.0)
    neumf_optimizer: str = _f(
        "adam",
        "optimiser of NeuMF fine-tuning: a fresh Adam at a small rate improved on the "
        "fused start on validation where SGD (the paper's) did not (BENCHMARKS.md)",
        choices=("sgd", "adam"),
    )
    neumf_lr: float = _f(
        0.001,
        "learning rate of NeuMF fine-tuning (Adam, or SGD with sgd_momentum); 0.001 chosen on "
        "MovieLens 100K's validation split over 5 seeds (BENCHMARKS.md, issue 15)",
        min=0.0,
        max=10.0,
    )
    neumf_epoch_fraction: float = _f(
        0.25,
        "share of the train positives one epoch of NeuMF fine-tuning passes over (a fresh random share each "
        "epoch), so that validation also scores the model between whole passes and keeps a fine-tuning gain "
        "that a whole pass runs past; epochs and patience still count whole passes. 0.25 chosen on the "
        "validation splits of the three shared data sets, 5 seeds (BENCHMARKS.md, issue 31); 1 = whole passes",
        min=0.01,
        max=1.0,
    )
    sgd_momentum: float = _f(0.9, "momentum of SGD when neumf_optimizer=sgd", min=0.0, max=0.999)
    embedding_std: float = _f(0.01, "standard deviation of the normal initialisation of embeddings", min=1e-6, max=1.0)
    device: str = _f("auto", "torch device: auto = CUDA when available, else CPU", choices=("auto", "cpu", "cuda"))
    threads: int = _f(0, "CPU threads for torch; 0 = all cores", min=0, max=1024)
    train_procs: int = _f(
        1,
        "data-parallel training processes per model (torch's elastic launcher: one per GPU "
        "with NCCL, CPU processes with gloo); 1 = one process",
        min=1,
        max=64,
    )
    train_queue: str = _f("gpu", "Celery queue of the training tasks (LocalExecutor ignores it)")

    # --- scheduling and alerting (read by the DAG files at parse time) ----------------------------
    schedule: str = _f("0 2 * * *", "cron schedule of ncf_retrain (UTC); 'none' = manual and API triggers only")
    notifier: str = _f(
        "",
        "class path of an Airflow notifier that receives the one-line failure summary "
        "(e.g. airflow.providers.slack.notifications.slack.SlackNotifier); '' = log only",
    )

    # --- evaluation, gate, publication ----------------------------------------------------------
    eval_k: int = _f(10, "cut-off of HR@K / NDCG@K", min=1, max=1000)
    gate_min_lift: float = _f(0.02, "HR@K the new model must gain over item popularity", min=-1.0, max=1.0)
    gate_tolerance: float = _f(0.01, "HR@K the new model may lose against production", min=0.0, max=1.0)
    gate_min_overlap: float = _f(
        0.0,
        "gate rule on stability: the mean overlap@K of users' new lists with the lists in production must "
        "reach this (0 = off; e.g. 0.3 stops a model that would replace most of every user's list overnight)",
        min=0.0,
        max=1.0,
    )
    gate_max_gini: float = _f(
        1.0,
        "gate rule on concentration: the Gini index of how often each item is recommended in the top-K "
        "lists must not exceed this (1 = off; e.g. 0.9 stops a model that sends everyone to a few items)",
        min=0.0,
        max=1.0,
    )
    force_publish: bool = _f(False, "publish even if the gate rejects the model (recorded)")
    publish_model: str = _f(
        "neumf",
        "which model's table a run publishes: neumf (what the pipeline is for), or best: the model "
        "with the best validation HR@K among those the run trained (GMF, MLP, NeuMF, EASE^R) and item "
        "popularity, so a deployment whose models cannot beat popularity still serves a table, marked "
        "as such (the table's model column, the pointer and production.json name it)",
        choices=("neumf", "best"),
    )
    publish_k: int = _f(100, "recommendations per user in the published table", min=1, max=10000)
    publish_shards: int = _f(
        1,
        "score shards of publish: user ranges scored by parallel mapped tasks, each writing "
        "one part of the table (1 = one task; more for catalogues whose scoring outgrows a "
        "worker, see docs/SCALING.md)",
        min=1,
        max=1024,
    )
    retention_days: int = _f(30, "published partitions older than this many days are deleted", min=1)
    catalog_prefix: str = _f(
        "",
        "key prefix (below prefix) of the item catalogue's daily snapshots, e.g. catalog/items/ holding "
        "dt=YYYY-MM-DD/ folders of CSV or Parquet files (item_id, available, optional available_from and "
        "available_until): publish and the fallback then show only items available on the table's date "
        "(ncf_tasks/catalog.py); '' = no catalogue, every item may be shown",
    )
    catalog_max_age_days: int = _f(
        7,
        "the newest catalogue snapshot dated at most this many days before the table's date is used; an "
        "older one (a stalled export) stops the publish instead of showing what may have been withdrawn",
        min=0,
        max=366,
    )

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            _check(f, getattr(self, f.name))
        if len(self.mlp_layers) < 1 or any(w < 1 for w in self.mlp_layers) or self.mlp_layers[0] % 2:
            raise ConfigError(
                f"setting mlp_layers ({env_name('mlp_layers')}) = {list(self.mlp_layers)}: need at least one "
                "positive width and an even first width (it is split between user and item embeddings)"
            )
        if self.ease_lambda_min > self.ease_lambda_max:
            raise ConfigError(
                f"settings ease_lambda_min={self.ease_lambda_min} > ease_lambda_max={self.ease_lambda_max}"
            )
        if self.value_min > self.value_max:
            raise ConfigError(f"settings value_min={self.value_min} > value_max={self.value_max}")
        if not self.bucket:
            raise ConfigError(f"setting bucket ({env_name('bucket')}) must not be empty")
        if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", self.bucket) or ".." in self.bucket:
            raise ConfigError(
                f"setting bucket ({env_name('bucket')}) = {self.bucket[:80]!r}: an S3 bucket name has "
                "3-63 lowercase letters, digits, '.' and '-', and starts and ends with a letter or digit"
            )
        if self.s3_endpoint_url and not re.match(r"https?://[^/\s]+", self.s3_endpoint_url):
            raise ConfigError(
                f"setting s3_endpoint_url ({env_name('s3_endpoint_url')}) = "
                f"{self.s3_endpoint_url[:80]!r}: expected http://HOST[:PORT] or https://HOST[:PORT], or ''"
            )

    # -- construction ------------------------------------------------------------------------------
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Defaults, then ``NCF_*`` variables, then ``overrides`` (already typed or as strings)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            name = env_name(f.name)
            if name in env:
                values[f.name] = _parse(f, env[name], source=name)
        unknown = sorted(k for k in env if k.startswith(ENV_PREFIX) and k[len(ENV_PREFIX) :].lower() not in _FIELDS)
        if unknown:
            raise ConfigError(
                f"unknown environment variable(s) {unknown}; known: {sorted(env_name(n) for n in _FIELDS)}"
            )
        settings = cls(**values)
        return settings.replace(**overrides) if overrides else settings

    def replace(self, **overrides: Any) -> "Settings":
        """A copy with ``overrides`` applied; None values mean 'keep'. Unknown keys are refused."""
        unknown = sorted(set(overrides) - _FIELDS.keys())
        if unknown:
            raise ConfigError(f"unknown setting(s) {unknown}; known: {sorted(_FIELDS)}")
        typed = {k: _parse(_FIELDS[k], v, source=f"override {k}") for k, v in overrides.items() if v is not None}
        return dataclasses.replace(self, **typed)

    # -- views -----------------------------------------------------------------------------------
    def to_dict(self, redact: bool = True) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for k, v in d.items():
            if isinstance(v, tuple):
                d[k] = list(v)
            if redact and k in SECRET_FIELDS and v:
                d[k] = "***"
        return d

    def __repr__(self) -> str:  # never print secrets in task logs
        return f"Settings({json.dumps(self.to_dict())})"

    @property
    def cpu_threads(self) -> int:
        """``threads`` resolved: 0 = every core."""
        return self.threads or os.cpu_count() or 1

    @property
    def torch_device(self) -> str:
        """'cuda' or 'cpu': ``device`` resolved against the hardware. ``auto`` on a machine without a GPU
        device node is 'cpu' without importing torch (~2 s): a CPU worker's publish shard never imports it."""
        if self.device != "auto":
            return self.device
        if not any(map(os.path.exists, GPU_NODES)):
            return "cpu"
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


_FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(Settings)}
_HINTS = typing.get_type_hints(Settings)


def describe() -> list[tuple[str, str, str]]:
    """(environment variable, default, doc) for every setting: the table README's "Configuration" prints."""
    rows = []
    for f in dataclasses.fields(Settings):
        default = f.default
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else str(default)
        rows.append((env_name(f.name), shown, f.metadata["doc"]))
    return rows


def _parse(f: dataclasses.Field, raw: Any, *, source: str) -> Any:
    """Coerce an env string / param value to the field's type, naming the setting on failure."""
    hint = _HINTS[f.name]
    try:
        if hint is bool:
            if isinstance(raw, bool):
                return raw
            s = str(raw).strip().lower()
            if s in ("1", "true", "yes", "on"):
                return True
            if s in ("0", "false", "no", "off", ""):
                return False
            raise ValueError("expected true/false")
        if hint is int:
            if isinstance(raw, bool) or (isinstance(raw, float) and not raw.is_integer()):
                raise ValueError("expected an integer")
            return int(raw)
        if hint is float:
            if isinstance(raw, bool):
                raise ValueError("expected a number")
            value = float(raw)
            if not math.isfinite(value):  # NaN compares false with every bound: it would pass them all
                raise ValueError("expected a finite number")
            return value
        if hint is str:
            if not isinstance(raw, str):
                raise ValueError("expected text")
            return raw
        if typing.get_origin(hint) is tuple:
            (elem,) = {a for a in typing.get_args(hint) if a is not Ellipsis}
            items = raw if isinstance(raw, (list, tuple)) else [s for s in str(raw).split(",") if s.strip()]
            return tuple(elem(x.strip()) if isinstance(x, str) else elem(x) for x in items)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"setting {f.name} ({source}) = {quote(str(raw), 80)}: {clip(str(exc), 100)}; {f.metadata['doc']}"
        ) from None
    raise TypeError(f"unsupported setting type {hint} for {f.name}")


def _check(f: dataclasses.Field, value: Any) -> None:
    meta = f.metadata
    env = env_name(f.name)
    choices = meta.get("choices")
    if choices is not None:
        bad = [v for v in (value if isinstance(value, tuple) else (value,)) if v not in choices]
        if bad:
            raise ConfigError(f"setting {f.name} ({env}) = {quote(value, 80)}: allowed values are {list(choices)}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"setting {f.name} ({env}) = {value!r}: expected a finite number")
    lo, hi = meta.get("min"), meta.get("max")
    if lo is not None and value < lo or hi is not None and value > hi:
        raise ConfigError(
            f"setting {f.name} ({env}) = {value!r}: must lie in [{lo if lo is not None else '-inf'}, "
            f"{hi if hi is not None else 'inf'}]"
        )
