"""Publish a run's top-K table, then — only then — the production record and the ``_latest.json`` pointer.

Scoring: every user against every item (``scoring.top_k``), items the user interacted with (train,
validation and test) excluded, indices mapped back to the string ids. The table is one Parquet
object, ``layout.topk_table(D, run)`` (schema in DESIGN.md), written before anything points to it.
Its ``generated_at`` is when the published model was trained (saved in the model artifact), so
re-running evaluate or publish for a run writes byte-identical tables.

Order of visibility (a crash anywhere leaves the previous pointer and its table valid):
  1. the table object (a new key per run, never overwriting what a pointer names);
  2. ``recs/topk/_latest.json``, by a conditional write (compare-and-swap on the version read before
     the table was written): of two publishers racing for the pointer exactly one wins; the loser
     gets ``ConflictError`` (exit code 8, not retried), deletes its own table and leaves nothing
     named by the pointer;
  3. ``models/production.json``, the record of what is served (the pointer is the authority:
     ``evaluate`` takes production from the pointer, so a crash between 2 and 3 cannot make the gate
     compare with a model that is not served);
  4. clean-up of what nothing points to: the table this pointer replaced (same date), tables of the
     date that no pointer names and that are older than ``ORPHAN_GRACE`` (crashed publishers; the
     grace keeps an in-flight publisher's table), and partitions older than ``retention_days``
     before the published date or today, whichever is earlier. Never the table the pointer names.
Re-publishing the same run writes the same keys with the same content.
"""

from __future__ import annotations

import datetime as dt
import logging
import time

import numpy as np
import torch

from ncf_tasks import dashboard, layout
from ncf_tasks.artifacts import PUBLISHED_MODEL, RunArtifacts, RunData, setup_torch
from ncf_tasks.config import Settings
from ncf_tasks.errors import ConfigError, ConflictError, GateRejected
from ncf_tasks.scoring import top_k as score_top_k
from ncf_tasks.storage import Storage

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
ORPHAN_GRACE = dt.timedelta(hours=1)  # an unreferenced table younger than this may be an in-flight publish
MAX_DAYS_AHEAD = 1  # a partition date later than tomorrow (UTC) is an operator's typo, not a plan
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


def run_publish(settings: Settings, *, run_id: str, date: str, now: dt.datetime | None = None) -> dict:
    """Stage: write the table, then swap the pointer, then the production record; returns the pointer."""
    t0 = time.perf_counter()
    day = layout.day(date)
    now = now or dt.datetime.now(dt.timezone.utc)
    if dt.date.fromisoformat(day) > now.date() + dt.timedelta(days=MAX_DAYS_AHEAD):
        raise ConfigError(f"publish date {day} lies after {now.date() + dt.timedelta(days=MAX_DAYS_AHEAD)}: a table "
                          "is published for the day of logs it was trained on (retention counts back from it)")
    storage = Storage(settings)
    run = RunArtifacts(storage, run_id)
    metrics = run.metrics()
    decision = metrics["gate"]
    if not decision["publish"] and not settings.force_publish:
        raise GateRejected(f"run {run_id} was rejected by the gate ({'; '.join(decision['reasons'])}); "
                           "set force_publish=true to publish it anyway")
    forced = decision.get("forced", False) or (settings.force_publish and not decision["passed"])
    previous, version = storage.get_json_versioned(layout.latest_pointer())  # what is served now
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
    quality = {f"hr@{k}": neumf[f"hr@{k}"], f"ndcg@{k}": neumf[f"ndcg@{k}"]}
    pointer = {
        "schema_version": SCHEMA_VERSION, "partition": day, "run_id": run_id,
        "uri": storage.uri(table_key), "files": [table_key], "rows": table.height,
        "users": int(table["user_id"].n_unique()), "k": settings.publish_k, "metrics": quality,
        "model": PUBLISHED_MODEL, "model_uri": run.uri(run.model(PUBLISHED_MODEL)),
        "forced": forced, "created_at": generated_at.isoformat(), "columns": TOPK_COLUMNS,
    }
    try:
        storage.put_json_if(layout.latest_pointer(), pointer, version)  # 2. the pointer: compare-and-swap
    except ConflictError:
        current, _ = storage.get_json_versioned(layout.latest_pointer())
        if table_key not in (current or {}).get("files", []):
            storage.delete([table_key])  # ours is named by nothing: leave nothing behind
        winner = (current or {}).get("run_id")
        raise ConflictError(f"publish of run {run_id} for {day} lost the race for {storage.uri(layout.latest_pointer())}: "
                            f"run {winner} replaced it after this publish read it; {winner}'s table stays served and "
                            "nothing of this publish is visible") from None
    record_production(storage)                                    # 3. the record of what is served
    superseded = [f for f in (previous or {}).get("files", []) if f != table_key]
    removed = cleanup(storage, day, table_key, superseded, settings.retention_days, now)  # 4. unreferenced only
    run.write_publication({"partition": day, "table": table_key, "rows": table.height, "forced": forced,
                           "seconds": round(time.perf_counter() - t0, 1)})
    dashboard.rebuild(storage)
    log.info("published %d rows (%d users, top-%d) of run %s to %s%s; pointer %s; %d old object(s) removed (%.1fs)",
             table.height, pointer["users"], settings.publish_k, run_id, pointer["uri"],
             " (FORCED)" if forced else "", storage.uri(layout.latest_pointer()), removed, time.perf_counter() - t0)
    return {**pointer, "pointer_uri": storage.uri(layout.latest_pointer()), "removed": removed}


def record_production(storage: Storage, attempts: int = 20) -> dict:
    """Write ``models/production.json`` from the pointer, re-reading the pointer after each write until
    the two agree: a publisher that swapped the pointer earlier but writes its record later would
    otherwise leave a record of a run that is no longer served."""
    for _ in range(attempts):
        pointer, _ = storage.get_json_versioned(layout.latest_pointer())
        record = {"run_id": pointer["run_id"], "model": pointer["model"], "model_uri": pointer["model_uri"],
                  "metrics": pointer["metrics"], "published_partition": pointer["partition"], "forced": pointer["forced"]}
        storage.put_json(layout.production_pointer(), record)
        again, _ = storage.get_json_versioned(layout.latest_pointer())
        if again == pointer:
            return record
    log.warning("%s kept changing while %s was written (%d attempts): the record may lag; the pointer is the "
                "authority and the next publish rewrites the record", storage.uri(layout.latest_pointer()),
                storage.uri(layout.production_pointer()), attempts)
    return record


def cleanup(storage: Storage, day: str, live_key: str, superseded: list[str], retention_days: int,
            now: dt.datetime) -> int:
    """Delete tables nothing points to: those the new pointer replaced, same-day orphans older than
    ``ORPHAN_GRACE``, and partitions past retention. Never ``live_key``."""
    cutoff = min(dt.date.fromisoformat(day), now.date()) - dt.timedelta(days=retention_days)
    doomed = set(superseded)
    for o in storage.list(layout.topk_root()):
        d = layout.date_of_partition(o["key"])
        if o["key"] == live_key or d is None:
            continue
        if dt.date.fromisoformat(d) < cutoff or (d == day and now - o["modified"] > ORPHAN_GRACE):
            doomed.add(o["key"])
    doomed.discard(live_key)
    return storage.delete(sorted(doomed))
