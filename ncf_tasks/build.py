"""Training set of a run: validated lake partitions → id maps, leave-one-out split, eval candidates.

Protocol (He et al. 2017): every de-duplicated (user, item) interaction is a positive; each user's
latest interaction is the test positive and the second-latest the validation positive; the rest are
train positives. Ties on time are broken by a fixed hash of the (user id, item id) pair (``tie_key``), so
reruns agree and the choice is unrelated to how ids are numbered. Users with fewer than
three interactions stay train-only. Validation and test positives are ranked against ``eval_negatives``
items sampled uniformly among the items the user never interacted with, distinct within a list.

Written under ``runs/<run_id>/`` through ``artifacts.RunArtifacts``: the id maps (the only place where
string ids meet the contiguous int32 indices), the train/valid/test splits, the resolved settings and
the manifest (last) — the typed description of the set (with its content digest) that training,
evaluation and publication read their sizes and files from.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ncf_tasks import layout, profile, warm
from ncf_tasks.artifacts import TRAINING_FILES, RunArtifacts
from ncf_tasks.config import Settings
from ncf_tasks.errors import DataError, NoDataError
from ncf_tasks.rundata import Manifest
from ncf_tasks.storage import Storage

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)


@dataclass
class TrainingSet:
    users: "pl.DataFrame"  # user_idx:int32, user_id:str
    items: "pl.DataFrame"  # item_idx:int32, item_id:str, train_count:int64
    train: "pl.DataFrame"  # user_idx, item_idx
    valid: "pl.DataFrame"  # user_idx, item_idx, negatives: Array(int32, n)
    test: "pl.DataFrame"
    report: dict


def dedupe_pairs(df: "pl.DataFrame") -> "pl.DataFrame":
    """One row per (user, item), keeping the latest event time."""
    import polars as pl

    return df.group_by("user_id", "item_id").agg(pl.col("event_ts").max())


def k_core(df: "pl.DataFrame", min_user: int, min_item: int) -> tuple["pl.DataFrame", dict]:
    """Drop users/items below the minimum counts, repeatedly, until nothing changes."""
    import polars as pl

    before = {"users": df["user_id"].n_unique(), "items": df["item_id"].n_unique(), "interactions": df.height}
    rounds = 0
    while True:
        kept = df.filter((pl.len().over("user_id") >= min_user) & (pl.len().over("item_id") >= min_item))
        rounds += 1
        if kept.height == df.height:
            break
        df = kept
    after = {"users": df["user_id"].n_unique(), "items": df["item_id"].n_unique(), "interactions": df.height}
    return df, {
        "rounds": rounds,
        "min_user_interactions": min_user,
        "min_item_interactions": min_item,
        **{f"{k}_dropped": before[k] - after[k] for k in before},
    }


def tie_key() -> "pl.Expr":
    """The order among one user's interactions of the same time: a seeded hash of the string ids.

    Why not the item id: catalogues number items in the order they were added, so any order of ids
    carries popularity and age, and ties at a user's latest time are common (MovieLens 100K: 44% of its
    users rated two or more items in their last second). Breaking them by item index, descending, put
    less popular items into the test split: their mean train count was 134 against 145 for validation
    items; with this key it is 148 against 147. A hash is as reproducible and carries no such order.
    Hashing the string ids, not the indices, keeps a pair's key when other ids enter the window;
    ``pl.Expr.hash`` is stable within the pinned polars version (a new version may redraw ties, which
    a rebuild records in its digest).
    """
    import polars as pl

    return pl.struct("user_id", "item_id").hash(seed=0).alias("tie")


def split_leave_one_out(pairs: "pl.DataFrame") -> "pl.DataFrame":
    """Adds ``role``: 'test' (latest), 'valid' (second-latest) for users with >= 3 items, else 'train'.
    ``pairs``: user_idx, item_idx, event_ts, tie (``tie_key``: the order among equal times)."""
    import polars as pl

    ranked = pairs.sort(["user_idx", "event_ts", "tie", "item_idx"], descending=[False, True, True, True]).with_columns(
        pl.int_range(pl.len()).over("user_idx").alias("_rank"), pl.len().over("user_idx").alias("_n")
    )
    role = (
        pl.when((pl.col("_n") >= 3) & (pl.col("_rank") == 0))
        .then(pl.lit("test"))
        .when((pl.col("_n") >= 3) & (pl.col("_rank") == 1))
        .then(pl.lit("valid"))
        .otherwise(pl.lit("train"))
    )
    return ranked.with_columns(role.alias("role")).drop("_rank", "_n", "tie")


def build_training_set(events: "pl.DataFrame", settings: Settings) -> TrainingSet:
    """The pure core: events (user_id, item_id, event_ts) in, the whole training set out."""
    import polars as pl
    import torch

    from ncf_tasks.sampling import PositiveSet, eval_candidates, feasible

    pairs = dedupe_pairs(events.select("user_id", "item_id", "event_ts"))
    n_pairs = pairs.height
    pairs, filt = k_core(pairs, settings.min_user_interactions, settings.min_item_interactions)
    if pairs.height == 0:
        raise DataError(
            f"no interactions left after filtering ({filt}); lower min_user_interactions / "
            "min_item_interactions or widen window_days"
        )
    users = (
        pairs.select("user_id")
        .unique()
        .sort("user_id")
        .with_row_index("user_idx")
        .with_columns(pl.col("user_idx").cast(pl.Int32))
    )
    items = (
        pairs.select("item_id")
        .unique()
        .sort("item_id")
        .with_row_index("item_idx")
        .with_columns(pl.col("item_idx").cast(pl.Int32))
    )
    idx = (
        pairs.with_columns(tie_key())
        .join(users, on="user_id")
        .join(items, on="item_id")
        .select("user_idx", "item_idx", "event_ts", "tie")
    )
    split = split_leave_one_out(idx)
    n_users, n_items, n_neg = users.height, items.height, settings.eval_negatives

    pos = PositiveSet(
        torch.from_numpy(split["user_idx"].to_numpy(writable=True)),
        torch.from_numpy(split["item_idx"].to_numpy(writable=True)),
        n_users,
        n_items,
    )
    held, excluded = {}, {}
    for k, role in enumerate(("valid", "test")):
        rows = split.filter(pl.col("role") == role).select("user_idx", "item_idx").sort("user_idx")
        u = torch.from_numpy(rows["user_idx"].to_numpy(writable=True))
        ok = feasible(pos, u, n_neg)
        excluded[role] = int((~ok).sum())
        rows, u = rows.filter(pl.Series(ok.numpy())), u[ok]
        gen = torch.Generator().manual_seed(settings.seed * 1000 + k)
        neg = eval_candidates(pos, u, n_neg, gen).to(torch.int32).numpy()
        held[role] = rows.with_columns(pl.Series("negatives", neg, dtype=pl.Array(pl.Int32, n_neg)))

    if held["valid"].height == 0 or held["test"].height == 0:
        raise DataError(
            f"no user can be evaluated: each held-out item is ranked among eval_negatives={n_neg} items "
            f"the user never interacted with, and the catalogue has {n_items} items "
            f"({excluded['test']} of {excluded['test'] + held['test'].height} users with a test item have "
            "fewer); lower eval_negatives or widen window_days"
        )
    # event_ts: a warm-started training reads the recent window's rows (warm.py)
    train = (
        split.filter(pl.col("role") == "train").select("user_idx", "item_idx", "event_ts").sort("user_idx", "item_idx")
    )
    counts = train.group_by("item_idx").len("train_count")
    items = (
        items.join(counts, on="item_idx", how="left").with_columns(pl.col("train_count").fill_null(0)).sort("item_idx")
    )
    total = split.height
    report = {
        "users": n_users,
        "items": n_items,
        "interactions": total,
        "train_positives": train.height,
        "valid_users": held["valid"].height,
        "test_users": held["test"].height,
        "eval_users_excluded_too_dense": excluded,
        "duplicate_pairs_merged": events.height - n_pairs,
        "filtered": filt,
        "sparsity": round(1 - total / (n_users * n_items), 6),
    }
    return TrainingSet(
        users=users.select("user_idx", "user_id"),
        items=items,
        train=train,
        valid=held["valid"],
        test=held["test"],
        report=report,
    )


def validated_partitions(storage: Storage, end_date: str, window_days: int) -> tuple[list[dict], list[str]]:
    """Lake partitions up to ``end_date`` (within the window) that passed validation, and those that did not."""
    end = dt.date.fromisoformat(end_date)
    start = end - dt.timedelta(days=window_days - 1) if window_days else dt.date.min
    objects = {o["key"]: o for o in storage.list(layout.lake_root())}
    dates = sorted({layout.date_of_partition(k) for k in objects} - {None})
    files: dict[str, list[dict]] = {}
    for key, o in objects.items():
        if layout.is_lake_part(key):  # one file, or the parts of a mapped ingest
            files.setdefault(layout.date_of_partition(key), []).append(o)
    chosen, unvalidated = [], []
    for d in dates:
        if not (start <= dt.date.fromisoformat(d) <= end) or d not in files:
            continue
        if layout.validated_marker(d) in objects:
            chosen += [{"date": d, "key": o["key"], "etag": o["etag"], "size": o["size"]} for o in files[d]]
        else:
            unvalidated.append(d)
    return chosen, unvalidated


def run_build(settings: Settings, *, run_id: str, end_date: str, explicit: Iterable[str] = ()) -> dict:
    """Stage: read validated partitions, build, write ``runs/<run_id>/``; returns counts and URIs.

    The tuned profile (``profile.py``) is resolved here, once per run, except for the ``explicit`` settings
    (trigger params, ``--set``), and recorded in the manifest for the later stages."""
    t0 = time.perf_counter()
    end_date = layout.day(end_date)
    layout.safe_run_id(run_id)  # a bad run id is the operator's (exit 2), found before any reading
    storage = Storage(settings)
    settings, profile_record = profile.resolve(settings, storage, explicit)
    parts, unvalidated = validated_partitions(storage, end_date, settings.window_days)
    if unvalidated:
        log.warning("skipping %d lake partition(s) without a passed validation: %s", len(unvalidated), unvalidated)
    if not parts:
        raise NoDataError(
            f"no validated partitions under {storage.uri(layout.lake_root())} up to {end_date}"
            + (f" within {settings.window_days} days" if settings.window_days else "")
        )
    events = storage.read_parquet([p["key"] for p in parts], columns=["user_id", "item_id", "event_ts"])
    days = len({p["date"] for p in parts})  # a day ingested by mapped tasks has several files
    log.info("read %d events from %d partitions (%s..%s)", events.height, days, parts[0]["date"], parts[-1]["date"])
    ts = build_training_set(events, settings)
    manifest = write_training_set(
        storage,
        run_id,
        ts,
        settings,
        end_date=end_date,
        partitions=parts,
        skipped_unvalidated=unvalidated,
        build_seconds=round(time.perf_counter() - t0, 3),
        profile=profile_record,
        warm=warm.decide(storage, settings, end_date),
    )
    secs = round(time.perf_counter() - t0, 3)
    log.info(
        "built training set %s: %d users, %d items, %d train positives, sparsity %.4f (%.1fs)",
        run_id,
        ts.report["users"],
        ts.report["items"],
        ts.report["train_positives"],
        ts.report["sparsity"],
        secs,
    )
    return {
        "run_id": run_id,
        "manifest_uri": RunArtifacts(storage, run_id).uri(RunArtifacts.MANIFEST),
        "digest": manifest.digest,
        "uris": {n: storage.uri(k) for n, k in manifest.files.items()},
        "partitions": days,
        "seconds": secs,
        "profile": profile_record and profile_record["version"],
        **ts.report,
    }


def write_training_set(
    storage: Storage,
    run_id: str,
    ts: TrainingSet,
    settings: Settings,
    *,
    end_date: str = "",
    partitions: list[dict] | None = None,
    skipped_unvalidated: list[str] | None = None,
    build_seconds: float | None = None,
    profile: dict | None = None,
    warm: dict | None = None,
) -> Manifest:
    """Write the set under ``runs/<run_id>/`` through ``RunArtifacts`` (files, settings, manifest last)."""
    frames = {role: getattr(ts, role) for role in TRAINING_FILES}
    return RunArtifacts(storage, run_id).write_training_set(
        frames,
        ts.report,
        settings,
        end_date=end_date,
        partitions=partitions,
        skipped_unvalidated=skipped_unvalidated,
        build_seconds=build_seconds,
        profile=profile,
        warm=warm,
    )
