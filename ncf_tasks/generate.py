"""Synthetic interaction logs a recommender can learn from, written as raw daily files.

Users belong to taste groups; each group prefers a different slice of the catalogue. Item popularity
is long-tailed (Zipf) and user activity heavy-tailed (log-normal), events are spread over the days with
second-resolution timestamps, and about 1% of events are sent twice, as real collectors do. Everything
is drawn in bulk with numpy from one seed, so the same arguments give the same files.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from ncf_tasks import layout, rawio
from ncf_tasks.config import Settings
from ncf_tasks.errors import ConfigError
from ncf_tasks.storage import Storage

if TYPE_CHECKING:
    import polars as pl

log = logging.getLogger(__name__)
EVENT_TYPES = ("view", "click", "purchase")


@dataclass(frozen=True)
class SyntheticSpec:
    users: int = 2000
    items: int = 1000
    days: int = 7
    events_per_day: int = 10_000
    end_date: str = "2026-11-26"
    groups: int = 12
    taste_strength: float = 0.85  # share of events drawn from the user's group instead of global popularity
    duplicate_rate: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("users", "items", "days", "events_per_day", "groups"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1, got {getattr(self, name)}")
        dt.date.fromisoformat(self.end_date)


def synthesize(spec: SyntheticSpec) -> "pl.DataFrame":
    """All events of all days in the canonical schema (ids as text, UTC timestamps)."""
    import polars as pl

    rng = np.random.default_rng(spec.seed)
    n_users, n_items, g = spec.users, spec.items, spec.groups
    # Long-tailed item popularity; a random permutation so popularity is not the id order.
    pop = 1.0 / (np.arange(n_items) + 10.0) ** 0.9
    pop = pop[rng.permutation(n_items)]
    # Each group likes a random subset of items (~ 1/g of the catalogue) on top of popularity.
    affinity = rng.random((g, n_items)) < max(1.5 / g, 0.02)
    group_p = pop[None, :] * np.where(affinity, 30.0, 1.0)
    group_p /= group_p.sum(axis=1, keepdims=True)
    pop_p = pop / pop.sum()
    user_group = rng.integers(0, g, n_users)
    activity = rng.lognormal(0.0, 1.0, n_users)
    activity /= activity.sum()

    n = spec.events_per_day * spec.days
    users = rng.choice(n_users, size=n, p=activity)
    items = np.empty(n, dtype=np.int64)
    from_group = rng.random(n) < spec.taste_strength
    groups_of_event = user_group[users]
    for k in range(g):  # one bulk draw per taste group (g is small), not per event
        sel = np.flatnonzero(from_group & (groups_of_event == k))
        items[sel] = rng.choice(n_items, size=sel.size, p=group_p[k])
    rest = np.flatnonzero(~from_group)
    items[rest] = rng.choice(n_items, size=rest.size, p=pop_p)

    first_day = dt.date.fromisoformat(spec.end_date) - dt.timedelta(days=spec.days - 1)
    start_us = int(dt.datetime(first_day.year, first_day.month, first_day.day, tzinfo=dt.UTC).timestamp()) * 10**6
    day_idx = np.repeat(np.arange(spec.days), spec.events_per_day)
    ts_us = start_us + day_idx * 86_400_000_000 + rng.integers(0, 86_400_000_000, n)
    etype = rng.choice(len(EVENT_TYPES), size=n, p=[0.7, 0.2, 0.1])
    value = np.round(rng.exponential(60.0, n), 1)

    df = pl.DataFrame(
        {
            "user_id": users,
            "item_id": items,
            "event_ts": ts_us,
            "event_type": etype,
            "value": value,
        }
    ).with_columns(
        pl.format("u{}", pl.col("user_id").cast(pl.String).str.zfill(6)).alias("user_id"),
        pl.format("i{}", pl.col("item_id").cast(pl.String).str.zfill(6)).alias("item_id"),
        pl.from_epoch("event_ts", time_unit="us").dt.replace_time_zone("UTC").alias("event_ts"),
        pl.col("event_type").replace_strict(dict(enumerate(EVENT_TYPES)), return_dtype=pl.String),
    )
    n_dup = int(n * spec.duplicate_rate)
    if n_dup:
        df = pl.concat([df, df[rng.choice(n, n_dup, replace=False)]])
    return df.sort("event_ts")


def write_days(
    storage: Storage,
    df: "pl.DataFrame",
    *,
    fmt: str = "csv",
    gz: bool = False,
    files_per_day: int = 2,
    stem: str = "events",
) -> list[dict]:
    """Write events into ``raw/interactions/dt=D/`` by the UTC date of ``event_ts``.

    Each day is split into ``files_per_day`` files, as collectors rotate files. Existing files of the
    same name are overwritten (so a rerun is idempotent); other producers' files are left alone.
    """
    import polars as pl

    out = []
    dated = df.with_columns(pl.col("event_ts").dt.date().alias("_day"))
    for (day,), part in dated.partition_by("_day", as_dict=True, maintain_order=True).items():
        part = part.drop("_day")
        chunk = -(-part.height // files_per_day)
        for i in range(files_per_day):
            piece = part.slice(i * chunk, chunk)
            if piece.height == 0:
                continue
            key = layout.raw_partition(day) + rawio.file_name(f"{stem}-{i:04d}", fmt, gz)
            storage.put_bytes(key, rawio.encode(piece, fmt, gz))
            out.append({"key": key, "rows": piece.height})
    return out


def write_catalog(storage: Storage, settings: Settings, spec: SyntheticSpec, unavailable: float) -> dict:
    """An item catalogue snapshot for ``spec.end_date`` (``catalog.py``'s format) listing every synthetic item:
    a share ``unavailable`` of them not shown, half by the flag (withdrawn), half released after the day."""
    import polars as pl

    if not settings.catalog_prefix.strip("/"):
        raise ConfigError("generate --catalog-unavailable: set catalog_prefix (NCF_CATALOG_PREFIX) to say where")
    rng = np.random.default_rng(spec.seed + 1)
    n = spec.items
    off = rng.random(n) < unavailable
    later = off & (rng.random(n) < 0.5)
    release = (dt.date.fromisoformat(spec.end_date) + dt.timedelta(days=3)).isoformat()
    df = pl.DataFrame(
        {
            "item_id": pl.select(pl.format("i{}", pl.int_range(n).cast(pl.String).str.zfill(6))).to_series(),
            "available": ~(off & ~later),
            "available_from": np.where(later, release, ""),
        }
    )
    key = layout.catalog_partition(settings.catalog_prefix, spec.end_date) + "items.csv"
    storage.put_bytes(key, df.write_csv().encode())
    return {"uri": storage.uri(key), "items": n, "unavailable": int(off.sum())}


def run_generate(
    settings: Settings,
    *,
    spec: SyntheticSpec,
    fmt: str = "csv",
    gz: bool = False,
    files_per_day: int = 2,
    catalog_unavailable: float | None = None,
) -> dict:
    """Stage entry point: synthesize and write a block of days (and, with ``catalog_unavailable``, an item
    catalogue snapshot for the last day); returns what was written."""
    storage = Storage(settings)
    df = synthesize(spec)
    catalog = None if catalog_unavailable is None else write_catalog(storage, settings, spec, catalog_unavailable)
    files = write_days(storage, df, fmt=fmt, gz=gz, files_per_day=files_per_day)
    days = sorted({layout.date_of_partition(f["key"]) for f in files})
    log.info("generated %d events over %d days into %s", df.height, len(days), storage.uri(layout.raw_root()))
    return {
        "rows": df.height,
        "files": len(files),
        "days": days,
        "uri": storage.uri(layout.raw_root()),
        "spec": asdict(spec),
        "format": fmt,
        "gzip": gz,
        "catalog": catalog,
    }
