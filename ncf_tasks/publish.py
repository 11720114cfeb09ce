"""Publish a run's top-K table, then — only then — the production record and the ``_latest.json`` pointer.

Scoring: every user against every item (``scoring.top_k``), items the user interacted with (train,
validation and test) excluded, indices mapped back to the string ids. The table is one Parquet
object, ``layout.topk_table(D, run)`` (schema in DESIGN.md), written before anything points to it.
Its ``generated_at`` is when the published model was trained (saved in the model artifact), so
re-running evaluate or publish for a run writes byte-identical tables.

Order of visibility (a crash anywhere leaves the previous pointer and its table valid):
  1. the table object (new key, never overwriting what a pointer names);
  2. ``models/production.json`` (what the gate compares the next run with);
  3. ``recs/topk/_latest.json`` (one PUT: S3 makes an object visible only once complete);
  4. clean-up: older tables of the same date, and partitions older than ``retention_days`` — never the
     one the pointer names.
Re-publishing the same run writes the same keys with the same content.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import numpy as np
import torch

from ncf_tasks import layout
from ncf_tasks.artifacts import PUBLISHED_MODEL, RunArtifacts, RunData, setup_torch
from ncf_tasks.config import Settings
from ncf_tasks.errors import GateRejected
from ncf_tasks.scoring import top_k as score_top_k
from ncf_tasks.storage import Storage

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
TOPK_COLUMNS = ["user_id", "rank", "item_id", "score", "model_run_id", "generated_at"]


def top_k(net: torch.nn.Module, data: RunData, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user_idx, item_idx, score) rows of every user's top-k unseen items, ranked, as numpy arrays."""
    users = torch.arange(data.n_users, device=data.train_users.device)
    out_i, out_s = score_top_k(net, users, data.n_items, k, exclude=data.all_positives())
    k = out_i.shape[1]
    u = np.repeat(np.arange(data.n_users, dtype=np.int32), k)
    i, s = out_i.numpy().reshape(-1), out_s.numpy().reshape(-1)
    keep = np.isfinite(s)  # users with fewer than k unseen items get shorter lists
    return u[keep], i[keep], s[keep]


def topk_table(data_maps: dict, u: np.ndarray, i: np.ndarray, s: np.ndarray, k: int, run_id: str,
               generated_at: dt.datetime):
    """The published schema: user_id, rank (1..K), item_id, score, model_run_id, generated_at."""
    import polars as pl

    users = data_maps["users"].sort("user_idx")["user_id"]
    items = data_maps["items"].sort("item_idx")["item_id"]
    df = pl.DataFrame({"_u": u, "user_id": users.gather(u), "item_id": items.gather(i), "score": s.astype(np.float32)})
    # rows arrive grouped by user, best first (topk is sorted), so the rank is the position in the group
    return df.with_columns(
        (pl.int_range(pl.len()).over("_u") + 1).cast(pl.Int16).alias("rank"),
        pl.lit(run_id).alias("model_run_id"),
        pl.lit(generated_at).cast(pl.Datetime("us", "UTC")).alias("generated_at"),
    ).select(TOPK_COLUMNS)


def run_publish(settings: Settings, *, run_id: str, date: str) -> dict:
    """Stage: write the table, then production.json, then the pointer; returns the pointer."""
    t0 = time.perf_counter()
    day = layout.day(date)
    storage = Storage(settings)
    run = RunArtifacts(storage, run_id)
    metrics = run.metrics()
    decision = metrics["gate"]
    if not decision["publish"] and not settings.force_publish:
        raise GateRejected(f"run {run_id} was rejected by the gate ({'; '.join(decision['reasons'])}); "
                           "set force_publish=true to publish it anyway")
    forced = decision.get("forced", False) or (settings.force_publish and not decision["passed"])
    device = setup_torch(settings)
    data = run.load_data(device)
    net, art = run.load_model(PUBLISHED_MODEL, device)
    u, i, s = top_k(net, data, settings.publish_k)
    generated_at = dt.datetime.fromisoformat(art.get("trained_at") or metrics["evaluated_at"])
    table = topk_table(run.id_maps(), u, i, s, settings.publish_k, run_id, generated_at)

    table_key = layout.topk_table(day, run_id)
    storage.write_parquet(table, table_key)                       # 1. the table
    k = metrics["k"]
    neumf = metrics["models"][PUBLISHED_MODEL]
    storage.put_json(layout.production_pointer(), {               # 2. what is in production
        "run_id": run_id, "model": PUBLISHED_MODEL, "model_uri": run.uri(run.model(PUBLISHED_MODEL)),
        "metrics": {f"hr@{k}": neumf[f"hr@{k}"], f"ndcg@{k}": neumf[f"ndcg@{k}"]},
        "published_partition": day, "forced": forced})
    pointer = {
        "schema_version": SCHEMA_VERSION, "partition": day, "run_id": run_id,
        "uri": storage.uri(table_key), "files": [table_key], "rows": table.height,
        "users": int(table["user_id"].n_unique()), "k": settings.publish_k,
        "metrics": {f"hr@{k}": neumf[f"hr@{k}"], f"ndcg@{k}": neumf[f"ndcg@{k}"]},
        "forced": forced, "created_at": generated_at.isoformat(), "columns": TOPK_COLUMNS,
    }
    storage.put_json(layout.latest_pointer(), pointer)            # 3. the pointer, last
    removed = cleanup(storage, day, table_key, settings.retention_days)  # 4. only what nothing points to
    log.info("published %d rows (%d users, top-%d) of run %s to %s%s; pointer %s; %d old object(s) removed (%.1fs)",
             table.height, pointer["users"], settings.publish_k, run_id, pointer["uri"],
             " (FORCED)" if forced else "", storage.uri(layout.latest_pointer()), removed, time.perf_counter() - t0)
    return {**pointer, "pointer_uri": storage.uri(layout.latest_pointer()), "removed": removed}


def cleanup(storage: Storage, day: str, live_key: str, retention_days: int) -> int:
    """Delete older tables of ``day`` and partitions older than the retention; never ``live_key``."""
    cutoff = dt.date.fromisoformat(day) - dt.timedelta(days=retention_days)
    doomed = []
    for key in storage.list_keys(layout.topk_root()):
        d = layout.date_of_partition(key)
        if key == live_key or d is None:
            continue
        if d == day or dt.date.fromisoformat(d) < cutoff:
            doomed.append(key)
    return storage.delete(doomed)
