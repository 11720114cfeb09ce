"""Publish a run's top-K table, then — only then — the production record and the ``_latest.json`` pointer.

Scoring: every user against every item, items the user interacted with (train, validation and test)
excluded, indices mapped back to the string ids. What is scored is the file evaluate exported (``serving``,
checked by its SHA-256), with numpy on the CPU (no torch import in a shard task) or with torch on a GPU
worker (``Scorer``). The table is written in
``publish_shards`` parts, one per contiguous user range (``shard_bounds``): ``score_shard`` writes part
``i`` of ``n`` to ``layout.topk_table(D, run, i, n)`` (one part: ``topk-<run>.parquet``; schema in
DESIGN.md), and ``commit`` then makes them visible together. In the DAG the shards are mapped tasks
(``.expand()``) that run side by side on the train queue's workers; ``run_publish`` (CLI, tests) runs
them in turn in one process. Each part's ``generated_at`` is when the published model was trained (saved
in the model artifact), so re-running evaluate, a shard or the whole publish writes byte-identical parts.

Order of visibility (a crash anywhere leaves the previous pointer and its table valid):
  1. the parts (new keys per run and shard count, never overwriting what a pointer names); ``commit``
     refuses an incomplete or missing set, so a failed shard never gets a pointer;
  2. ``recs/topk/_latest.json``, by a conditional write (compare-and-swap on the version ``commit`` read):
     of two publishers racing for the pointer exactly one wins; the loser gets ``ConflictError`` (exit
     code 8, not retried), deletes its own parts and leaves nothing named by the pointer;
  3. ``models/production.json``, the record of what is served (the pointer is the authority:
     ``evaluate`` takes production from the pointer, so a crash between 2 and 3 cannot make the gate
     compare with a model that is not served);
  4. clean-up of what nothing points to: the parts this pointer replaced (same date), objects of the
     date that no pointer names and that are older than ``ORPHAN_GRACE`` (crashed publishers; the
     grace keeps an in-flight publisher's parts), and partitions older than ``retention_days``
     before the published date or today, whichever is earlier. Never a part the pointer names.
Re-publishing the same run writes the same keys with the same content.

With an item catalogue (``catalog_prefix``; ``ncf_tasks/catalog.py``) the items it does not mark available on
the table's date score -inf for every user, in the shards and in the fallback: a list is filled with the
model's next-best available items rather than cut short and topped up from the fallback (a list runs short
only when the user has seen all but fewer than K available items, and then no fallback item could fill it
either). The pointer and the run's publication record count what the catalogue removed: the items it blocks,
the top-K slots they held (``serving.displaced``) and the fallback items. Every shard and the commit must use
the same validated snapshot, or the commit refuses.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from typing import TYPE_CHECKING

import numpy as np

from ncf_tasks import catalog, dashboard, layout, serving
from ncf_tasks.artifacts import PUBLISHED_MODEL, RunArtifacts
from ncf_tasks.config import Settings
from ncf_tasks.errors import ConfigError, ConflictError, DataError, GateRejected
from ncf_tasks.storage import Storage

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1
ORPHAN_GRACE = dt.timedelta(hours=1)  # an unreferenced table younger than this may be an in-flight publish
MAX_DAYS_AHEAD = 1  # a partition date later than tomorrow (UTC) is an operator's typo, not a plan
TOPK_COLUMNS = ["user_id", "rank", "item_id", "score", "model_run_id", "model", "generated_at"]


def topk_table(
    data_maps: dict,
    u: np.ndarray,
    i: np.ndarray,
    s: np.ndarray,
    run_id: str,
    generated_at: dt.datetime,
    model: str = PUBLISHED_MODEL,
):
    """The published schema: user_id, rank (1..K), item_id, score, model_run_id, model (which of the run's models
    made the list: neumf, or another with ``publish_model=best``), generated_at."""
    import polars as pl

    users = data_maps["users"].sort("user_idx")["user_id"]
    items = data_maps["items"].sort("item_idx")["item_id"]
    df = pl.DataFrame({"_u": u, "user_id": users.gather(u), "item_id": items.gather(i), "score": s.astype(np.float32)})
    # rows arrive grouped by user, best first (topk is sorted), so the rank is the position in the group
    return df.with_columns(
        (pl.int_range(pl.len()).over("_u") + 1).cast(pl.Int16).alias("rank"),
        pl.lit(run_id).alias("model_run_id"),
        pl.lit(model).alias("model"),
        pl.lit(generated_at).cast(pl.Datetime("us", "UTC")).alias("generated_at"),
    ).select(TOPK_COLUMNS)


def published_model(metrics: dict) -> str:
    """The model evaluate chose to publish (``gate.choose``); NeuMF for runs evaluated before the choice existed."""
    return metrics.get("published_model", PUBLISHED_MODEL)


def shard_bounds(n_users: int, shards: int, align: int = 1) -> list[tuple[int, int]]:
    """``shards`` contiguous user-index ranges of near-equal size, each starting at a multiple of ``align``
    (the scorer's chunk: ``ServingModel.chunk_users``, so that a sharded table is bit-identical to one
    task's); fewer when there are fewer chunks than shards."""
    chunks = -(-n_users // align)
    edges = (np.linspace(0, chunks, min(shards, max(chunks, 1)) + 1).round() * align).astype(int)
    edges[-1] = n_users
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _publishable(settings: Settings, run: RunArtifacts, date: str, now: dt.datetime) -> tuple[str, dict, bool]:
    """(day, metrics, forced) of a run that may be published for ``date``; raises ConfigError for a date
    too far ahead and GateRejected for a run the gate rejected (unless ``force_publish``)."""
    day = layout.day(date)
    if dt.date.fromisoformat(day) > now.date() + dt.timedelta(days=MAX_DAYS_AHEAD):
        raise ConfigError(
            f"publish date {day} lies after {now.date() + dt.timedelta(days=MAX_DAYS_AHEAD)}: a table "
            "is published for the day of logs it was trained on (retention counts back from it)"
        )
    metrics = run.metrics()
    decision = metrics["gate"]
    if not decision["publish"] and not settings.force_publish:
        raise GateRejected(
            f"run {run.run_id} was rejected by the gate ({'; '.join(decision['reasons'])}); "
            "set force_publish=true to publish it anyway"
        )
    return day, metrics, decision.get("forced", False) or (settings.force_publish and not decision["passed"])


def plan_shards(settings: Settings, *, run_id: str) -> list[dict]:
    """The shard list a sharded publish maps over: ``publish_shards`` user ranges of the run's users."""
    run = RunArtifacts(Storage(settings), run_id)
    chunk = run.serving_record(published_model(run.metrics()))[
        "chunk_users"
    ]  # shards start where the scorer's chunks start
    bounds = shard_bounds(run.manifest().n_users, settings.publish_shards, chunk)
    return [{"run_id": run_id, "shard": n, "shards": len(bounds), "users": [a, b]} for n, (a, b) in enumerate(bounds)]


class Scorer:
    """The model publish scores (evaluate's export, ``serving``) and the pairs to exclude, loaded once and
    shared by the shards one process scores."""

    def __init__(
        self,
        model: serving.ServingModel,
        exclude: tuple[np.ndarray, np.ndarray],
        threads: int = 1,
        device: str | None = None,
        maps: dict | None = None,
        generated_at: dt.datetime | None = None,
        available: catalog.Availability | None = None,
    ):
        self.model, self.exclude, self.threads, self.device = model, exclude, threads, device
        self.maps, self.generated_at = maps, generated_at  # what score_shard's table needs besides the scores
        self.available = available  # the catalogue's verdict: items never shown (None: no catalogue)
        self.last_removed = 0  # top-k slots the catalogue's blocked items held in the last ``top_k``
        self._net = None

    @classmethod
    def of_run(cls, settings: Settings, run: RunArtifacts, day: str | None = None) -> "Scorer":
        """The run's published model, its users' seen items and, with a catalogue, the items not available on
        ``day`` (read from the validated snapshot; ``catalog.availability``)."""
        model = run.load_serving(published_model(run.metrics()))
        trained = dt.datetime.fromisoformat(model.meta.get("trained_at") or run.metrics()["evaluated_at"])
        maps = run.id_maps()
        # torch on CUDA on a GPU worker; numpy otherwise (``Settings.torch_device`` decides without importing torch)
        return cls(
            model,
            run.positives(),
            settings.cpu_threads,
            "cuda" if settings.torch_device == "cuda" else None,
            maps=maps,
            generated_at=trained,
            available=catalog.availability(run.storage, settings, day, maps["items"]) if day else None,
        )

    def top_k(self, k: int, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user_idx, item_idx, score) rows of the top-k unseen (and, with a catalogue, available) items of
        users ``lo <= user_idx < hi``, ranked, as numpy arrays."""
        blocked = self.available.blocked if self.available else None
        removed = np.zeros(hi - lo, np.int64)
        if self.device:
            out_i, out_s = self._top_k_torch(k, lo, hi, blocked, removed)
        else:
            out_i, out_s = self.model.top_k(lo, hi, k, self.exclude, self.threads, blocked=blocked, removed=removed)
        self.last_removed = int(removed.sum())
        k = out_i.shape[1]
        u = np.repeat(np.arange(lo, hi, dtype=np.int32), k)
        i, s = out_i.reshape(-1), out_s.reshape(-1)
        keep = np.isfinite(s)  # users with fewer than k unseen items get shorter lists
        return u[keep], i[keep], s[keep]

    def _top_k_torch(
        self, k: int, lo: int, hi: int, blocked: np.ndarray | None, removed: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        import torch

        from ncf_tasks.models import from_state
        from ncf_tasks.scoring import top_k

        device = torch.device(self.device)
        if self._net is None:
            meta = self.model.meta
            state = {k: torch.from_numpy(v) for k, v in self.model.state.items()}
            net = from_state(
                meta["model"], state, self.model.n_users, self.model.n_items, meta["factors"], tuple(meta["mlp_layers"])
            )
            self._net = net.to(device).eval()
            self._exclude = tuple(torch.from_numpy(a).to(device) for a in self.exclude)
        out_i, out_s = top_k(
            self._net,
            torch.arange(lo, hi, device=device),
            self.model.n_items,
            k,
            exclude=self._exclude,
            blocked=None if blocked is None else torch.from_numpy(blocked).to(device),
            removed=torch.from_numpy(removed),
        )
        return out_i.numpy(), out_s.numpy()


def score_shard(
    settings: Settings,
    *,
    run_id: str,
    date: str,
    shard: int,
    shards: int,
    now: dt.datetime | None = None,
    scorer: Scorer | None = None,
) -> dict:
    """Stage (one mapped task of a sharded publish): score one user range, write its part of the table.

    The part's key and content depend only on the run, the date and (shard, shards), so a re-run shard
    rewrites the same bytes: idempotent. Nothing points to a part until ``commit``."""
    t0 = time.perf_counter()
    now = now or dt.datetime.now(dt.UTC)
    storage = Storage(settings)
    run = RunArtifacts(storage, run_id)
    day, _, _ = _publishable(settings, run, date, now)
    scorer = scorer or Scorer.of_run(settings, run, day)
    bounds = shard_bounds(scorer.model.n_users, shards, scorer.model.chunk_users())
    if not 0 <= shard < len(bounds):
        raise ConfigError(
            f"shard {shard} of {shards}: run {run_id} has {scorer.model.n_users} users, so shards 0..{len(bounds) - 1}"
        )
    lo, hi = bounds[shard]
    u, i, s = scorer.top_k(settings.publish_k, lo, hi)
    table = topk_table(scorer.maps, u, i, s, run_id, scorer.generated_at, scorer.model.meta["model"])
    key = layout.topk_table(day, run_id, shard, len(bounds))
    storage.write_parquet(table, key)
    secs = time.perf_counter() - t0
    log.info(
        "shard %d/%d: users %d..%d, %d rows to %s (%.1fs, %.0f users/s)",
        shard + 1,
        len(bounds),
        lo,
        hi - 1,
        table.height,
        storage.uri(key),
        secs,
        (hi - lo) / max(secs, 1e-9),
    )
    return {
        "run_id": run_id,
        "shard": shard,
        "shards": len(bounds),
        "key": key,
        "rows": table.height,
        "users": table["user_id"].n_unique(),
        "generated_at": scorer.generated_at.isoformat(),
        # the catalogue this part was filtered with (commit checks that every part used the same snapshot)
        "catalog": scorer.available.digest if scorer.available else None,
        "slots_removed": scorer.last_removed,
        "seconds": round(secs, 1),
    }


def run_publish(settings: Settings, *, run_id: str, date: str, now: dt.datetime | None = None) -> dict:
    """Stage (one process: CLI, tests): every shard of ``plan_shards`` in turn, then ``commit``."""
    now = now or dt.datetime.now(dt.UTC)
    run = RunArtifacts(Storage(settings), run_id)
    day, _, _ = _publishable(settings, run, date, now)  # refuse before loading anything
    scorer = Scorer.of_run(settings, run, day)
    plan = plan_shards(settings, run_id=run_id)
    parts = [
        score_shard(settings, run_id=run_id, date=date, shard=p["shard"], shards=p["shards"], now=now, scorer=scorer)
        for p in plan
    ]
    return commit(settings, run_id=run_id, date=date, parts=parts, now=now)


def commit(settings: Settings, *, run_id: str, date: str, parts: list[dict], now: dt.datetime | None = None) -> dict:
    """Stage: after every shard wrote its part, swap the pointer to the parts, then the production record.

    Refuses (DataError) parts that are missing, of another run, or not one complete set of shards: a
    pointer never names an incomplete table."""
    t0 = time.perf_counter()
    now = now or dt.datetime.now(dt.UTC)
    storage = Storage(settings)
    run = RunArtifacts(storage, run_id)
    day, metrics, forced = _publishable(settings, run, date, now)
    parts = sorted(parts, key=lambda p: p["shard"])
    shards = {p["shards"] for p in parts}
    expected = [layout.topk_table(day, run_id, n, len(parts)) for n in range(len(parts))]
    keys = [p["key"] for p in parts]
    stamps = {p.get("generated_at") for p in parts}
    if (
        not parts
        or shards != {len(parts)}
        or keys != expected
        or {p["run_id"] for p in parts} != {run_id}
        or len(stamps) != 1
    ):
        raise DataError(
            f"publish of run {run_id} for {day}: the parts {[p.get('key') for p in parts][:8]} are not "
            f"one complete set of {len(parts)} shard(s) of this run and date"
        )
    missing = [k for k in keys if not storage.exists(k)]
    if missing:
        raise DataError(
            f"publish of run {run_id} for {day}: part(s) {missing[:4]} missing from the bucket; "
            "re-run their score shards"
        )
    items = run.id_maps()["items"]  # read once: the catalogue's verdict, its record and the fallback's ids
    available = catalog.availability(storage, settings, day, items)
    used = {p.get("catalog") for p in parts}
    if used != {available.digest if available else None}:
        raise DataError(
            f"publish of run {run_id} for {day}: the parts were scored with item catalogue(s) {sorted(map(str, used))}, "
            f"but the catalogue for {day} is now {available.digest if available else 'none'}: the catalogue "
            "changed during the publish; re-run the score shards"
        )
    fallback, fallback_removed = write_fallback(
        storage, run, items, day, settings.publish_k, stamps_of(parts), available.blocked if available else None
    )
    filtered = (
        {
            **available.record(items.height),
            "slots_removed": sum(p.get("slots_removed", 0) for p in parts),
            "fallback_removed": fallback_removed,
        }
        if available
        else None
    )
    if filtered:
        log.info(
            "item catalogue %s (snapshot %s): %d of %d items not available on %s (%d not listed); %d top-%d slots "
            "went to the model's next-best available items; %d item(s) left the fallback list",
            filtered["uri"],
            filtered["snapshot"],
            filtered["items_blocked"],
            filtered["items"],
            day,
            filtered["items_unlisted"],
            filtered["slots_removed"],
            settings.publish_k,
            fallback_removed,
        )
    previous, version = storage.get_json_versioned(layout.latest_pointer())  # what is served now
    k = metrics["k"]
    published = published_model(metrics)
    chosen = metrics["models"][published]
    quality = {f"hr@{k}": chosen[f"hr@{k}"], f"ndcg@{k}": chosen[f"ndcg@{k}"]}
    rows = sum(p["rows"] for p in parts)
    pointer = {
        "schema_version": SCHEMA_VERSION,
        "partition": day,
        "run_id": run_id,
        # one part: its URI; several: a glob of exactly this run's parts (what polars, DuckDB and Spark read)
        "uri": storage.uri(keys[0]).replace("-part-00000-of-", "-part-*-of-"),
        "files": keys,
        "rows": rows,
        "users": sum(p["users"] for p in parts),
        "k": settings.publish_k,
        "metrics": quality,
        "model": published,
        "model_uri": run.uri(run.model(published)),
        "fallback": fallback,
        "fallback_uri": storage.uri(fallback),
        "catalog": filtered,
        "forced": forced,
        "created_at": stamps.pop(),
        "columns": TOPK_COLUMNS,
    }
    try:
        storage.put_json_if(layout.latest_pointer(), pointer, version)  # 2. the pointer: compare-and-swap
    except ConflictError:
        current, _ = storage.get_json_versioned(layout.latest_pointer())
        live = {*(current or {}).get("files", []), (current or {}).get("fallback")}
        storage.delete([key for key in [*keys, fallback] if key not in live])  # leave nothing behind
        winner = (current or {}).get("run_id")
        raise ConflictError(
            f"publish of run {run_id} for {day} lost the race for {storage.uri(layout.latest_pointer())}: "
            f"run {winner} replaced it after this publish read it; {winner}'s table stays served and "
            "nothing of this publish is visible"
        ) from None
    record_production(storage)  # 3. the record of what is served
    old = [*(previous or {}).get("files", []), (previous or {}).get("fallback")]
    superseded = [f for f in old if f and f not in keys and f != fallback]
    removed = cleanup(storage, day, {*keys, fallback}, superseded, settings.retention_days, now)  # 4. unreferenced
    run.write_publication(
        {
            "partition": day,
            "table": pointer["uri"],
            "files": keys,
            "rows": rows,
            "forced": forced,
            "catalog": filtered,
            # task time: the shards' scoring (summed, though mapped shards run side by side) and this
            "seconds": round(sum(p.get("seconds", 0) for p in parts) + time.perf_counter() - t0, 1),
        }
    )
    dashboard.rebuild(storage)
    log.info(
        "published %d rows (%d users, top-%d, %d part(s)) of run %s to %s%s; pointer %s; %d old object(s) removed",
        rows,
        pointer["users"],
        settings.publish_k,
        len(keys),
        run_id,
        pointer["uri"],
        " (FORCED)" if forced else "",
        storage.uri(layout.latest_pointer()),
        removed,
    )
    return {**pointer, "pointer_uri": storage.uri(layout.latest_pointer()), "removed": removed}


def stamps_of(parts: list[dict]) -> dt.datetime:
    """The parts' one ``generated_at`` (when the published model was trained): the fallback's too."""
    return dt.datetime.fromisoformat(parts[0]["generated_at"])


def write_fallback(
    storage: Storage,
    run: RunArtifacts,
    items: pl.DataFrame,
    day: str,
    k: int,
    generated_at: dt.datetime,
    blocked: np.ndarray | None = None,
) -> tuple[str, int]:
    """The run's fallback list (``evaluate``: recency-weighted popularity over the window), its top ``k`` of the
    items not ``blocked`` by the catalogue, beside the table: ``rank``, ``item_id``, ``score``, ``model_run_id``,
    ``generated_at``. Written before the pointer and named by it; the same bytes on a re-run. Returns its key
    and how many of the unfiltered top ``k`` the catalogue removed."""
    import polars as pl

    ids = items.sort("item_idx")["item_id"]
    ranked = run.fallback()
    removed = 0
    if blocked is not None and blocked.size:
        removed = int(ranked.head(k)["item_idx"].is_in(pl.Series(blocked).implode()).sum())
        ranked = ranked.filter(~pl.col("item_idx").is_in(pl.Series(blocked).implode()))
    head = ranked.head(k)
    table = pl.DataFrame(
        {
            "rank": pl.int_range(1, head.height + 1, eager=True).cast(pl.Int16),
            "item_id": ids.gather(head["item_idx"]),
            "score": head["score"],
        }
    ).with_columns(
        pl.lit(run.run_id).alias("model_run_id"),
        pl.lit(generated_at).cast(pl.Datetime("us", "UTC")).alias("generated_at"),
    )
    key = layout.topk_fallback(day, run.run_id)
    storage.write_parquet(table, key)
    return key, removed


def record_production(storage: Storage, attempts: int = 20) -> dict:
    """Write ``models/production.json`` from the pointer, re-reading the pointer after each write until
    the two agree: a publisher that swapped the pointer earlier but writes its record later would
    otherwise leave a record of a run that is no longer served."""
    for _ in range(attempts):
        pointer, _ = storage.get_json_versioned(layout.latest_pointer())
        record = {
            "run_id": pointer["run_id"],
            "model": pointer["model"],
            "model_uri": pointer["model_uri"],
            "fallback": pointer.get("fallback"),
            "metrics": pointer["metrics"],
            "published_partition": pointer["partition"],
            "forced": pointer["forced"],
        }
        storage.put_json(layout.production_pointer(), record)
        again, _ = storage.get_json_versioned(layout.latest_pointer())
        if again == pointer:
            return record
    log.warning(
        "%s kept changing while %s was written (%d attempts): the record may lag; the pointer is the "
        "authority and the next publish rewrites the record",
        storage.uri(layout.latest_pointer()),
        storage.uri(layout.production_pointer()),
        attempts,
    )
    return record


def cleanup(
    storage: Storage, day: str, live: set[str], superseded: list[str], retention_days: int, now: dt.datetime
) -> int:
    """Delete tables nothing points to: those the new pointer replaced, same-day orphans older than
    ``ORPHAN_GRACE`` (parts of a crashed publish), and partitions past retention. Never the ``live`` parts."""
    cutoff = min(dt.date.fromisoformat(day), now.date()) - dt.timedelta(days=retention_days)
    doomed = set(superseded)
    for o in storage.list(layout.topk_root()):
        d = layout.date_of_partition(o["key"])
        if o["key"] in live or d is None:
            continue
        if dt.date.fromisoformat(d) < cutoff or (d == day and now - o["modified"] > ORPHAN_GRACE):
            doomed.add(o["key"])
    doomed -= live
    return storage.delete(sorted(doomed))
