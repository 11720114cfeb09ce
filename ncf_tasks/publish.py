"""Publish a run's top-K table, then — only then — the production record and the ``_latest.json`` pointer.

Scoring: every user against every item in chunks of users (``score_all``; each chunk holds at most
``chunk_cells`` floats of per-pair activations, sized by the model's widest layer), items the user
interacted with (train, validation and test) set to -inf, the device's ``topk`` written into
preallocated result arrays, indices mapped back to the string ids. The table is one Parquet object,
``recs/topk/dt=D/topk-<run>.parquet`` (schema in DESIGN.md), written before anything points to it.

Order of visibility (a crash anywhere leaves the previous pointer and its table valid):
  1. the table object (new key, never overwriting what a pointer names);
  2. ``models/production.json`` (what the gate compares the next run with);
  3. ``recs/topk/_latest.json``, atomically (staged key, then copied into place);
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
from ncf_tasks.config import Settings
from ncf_tasks.errors import NcfError
from ncf_tasks.evaluate import PUBLISHED_MODEL, load_model
from ncf_tasks.models import SCORE_CHUNK_CELLS, pair_width
from ncf_tasks.rundata import RunData, load_run
from ncf_tasks.storage import Storage
from ncf_tasks.train import setup_torch

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1


class GateRejected(NcfError):
    """The gate rejected the run and no operator forced publication."""

    exit_code = 7


@torch.no_grad()
def top_k(net: torch.nn.Module, data: RunData, k: int, chunk_cells: int = SCORE_CHUNK_CELLS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user_idx, item_idx, score) rows of every user's top-k unseen items, ranked, as numpy arrays."""
    device = data.train_users.device
    n_users, n_items = data.n_users, data.n_items
    k = min(k, n_items)
    pu, pi = data.all_positives()
    order = torch.argsort(pu, stable=True)
    pu, pi = pu[order], pi[order]
    starts = torch.searchsorted(pu, torch.arange(n_users + 1, device=device))
    step = max(1, chunk_cells // (max(n_items, 1) * pair_width(net)))  # bounded memory per chunk
    all_items = torch.arange(n_items, device=device)
    # preallocated results: per-chunk small tensors interleaved with the large activations
    # fragmented the heap (RSS grew with the number of chunks: 7 GB at 100k x 20k)
    out_i = torch.empty((n_users, k), dtype=torch.int32)
    out_s = torch.empty((n_users, k), dtype=torch.float32)
    t0, last_log = time.perf_counter(), 0.0
    for a in range(0, n_users, step):
        b = min(a + step, n_users)
        users = torch.arange(a, b, device=device)
        scores = net.score_all(users, all_items).float()
        lo, hi = int(starts[a]), int(starts[b])
        scores[pu[lo:hi] - a, pi[lo:hi]] = float("-inf")  # already interacted: never recommended
        vals, idx = scores.topk(k, dim=1)
        del scores
        out_i[a:b] = idx
        out_s[a:b] = vals
        if time.perf_counter() - last_log > 10:
            last_log = time.perf_counter()
            done = b / n_users
            log.info("scored %d/%d users (%.0f%%), ETA %.0fs", b, n_users, 100 * done,
                     (last_log - t0) * (1 - done) / max(done, 1e-9))
    u = np.repeat(np.arange(n_users, dtype=np.int32), k)
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
    ).select("user_id", "rank", "item_id", "score", "model_run_id", "generated_at")


def run_publish(settings: Settings, *, run_id: str, date: str) -> dict:
    """Stage: write the table, then production.json, then the pointer; returns the pointer."""
    t0 = time.perf_counter()
    day = layout.day(date)
    storage = Storage(settings)
    prefix = layout.run_prefix(run_id)
    metrics = storage.get_json(prefix + "metrics.json")
    decision = metrics["gate"]
    if not decision["publish"] and not settings.force_publish:
        raise GateRejected(f"run {run_id} was rejected by the gate ({'; '.join(decision['reasons'])}); "
                           "set force_publish=true to publish it anyway")
    forced = decision.get("forced", False) or (settings.force_publish and not decision["passed"])
    device = setup_torch(settings)
    data = load_run(storage, run_id, device)
    net, _ = load_model(storage, run_id, PUBLISHED_MODEL, device)
    u, i, s = top_k(net, data, settings.publish_k)
    maps = {f: storage.read_parquet(data.manifest["files"][f]) for f in ("users", "items")}
    generated_at = dt.datetime.fromisoformat(metrics["evaluated_at"])  # deterministic for the run
    table = topk_table(maps, u, i, s, settings.publish_k, run_id, generated_at)

    table_key = layout.topk_partition(day) + f"topk-{layout.safe_run_id(run_id)}.parquet"
    storage.write_parquet(table, table_key)                       # 1. the table
    k = metrics["k"]
    neumf = metrics["models"][PUBLISHED_MODEL]
    storage.put_json(layout.production_pointer(), {               # 2. what is in production
        "run_id": run_id, "model": PUBLISHED_MODEL, "model_uri": storage.uri(prefix + f"{PUBLISHED_MODEL}.pt"),
        "metrics": {f"hr@{k}": neumf[f"hr@{k}"], f"ndcg@{k}": neumf[f"ndcg@{k}"]},
        "published_partition": day, "forced": forced})
    pointer = {
        "schema_version": SCHEMA_VERSION, "partition": day, "run_id": run_id,
        "uri": storage.uri(table_key), "files": [table_key], "rows": table.height,
        "users": int(table["user_id"].n_unique()), "k": settings.publish_k,
        "metrics": {f"hr@{k}": neumf[f"hr@{k}"], f"ndcg@{k}": neumf[f"ndcg@{k}"]},
        "forced": forced, "created_at": generated_at.isoformat(),
        "columns": ["user_id", "rank", "item_id", "score", "model_run_id", "generated_at"],
    }
    storage.put_json_atomic(layout.latest_pointer(), pointer)      # 3. the pointer, last
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
