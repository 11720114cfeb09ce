"""The item catalogue: which items may be shown on a day (optional input; ``catalog_prefix``).

A catalogue is a daily snapshot under ``<catalog_prefix>dt=YYYY-MM-DD/``: one or more ``.csv`` or
``.parquet`` files (names starting with ``.`` or ``_`` are markers and ignored) with the columns

* ``item_id`` (text, required; normalised like the logs' ids, ``id_normalization``, so it matches them),
* ``available`` (required: true/false, 1/0, yes/no, t/f, y/n in any letter case, or a Parquet boolean),
* ``available_from`` and ``available_until`` (optional: ISO dates or datetimes, Parquet dates or timestamps;
  a timestamp counts on its UTC date; empty = open).

An item is available on day D when its row says ``available`` and ``available_from <= D <= available_until``
(both ends inclusive, a missing end open). An item the snapshot does not list is **not** available: the
catalogue is the list of what may be shown, so a withdrawn item cannot slip through by being left out.

A table for day D uses the newest snapshot dated on or before D, at most ``catalog_max_age_days`` old.
The ``validate_catalog`` stage judges it (its own GX suite, ``include/expectations/catalog.json``) and
writes the lake copy ``lake/catalog/dt=S/items.parquet`` with a marker naming the raw files' ETags;
publish reads only a lake copy whose marker still matches the raw snapshot (a snapshot replaced after its
validation must be validated again).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ncf_tasks import layout
from ncf_tasks.config import Settings
from ncf_tasks.errors import DataError, NoDataError, quote
from ncf_tasks.rawio import format_of, is_marker, normalize_ids, parse_iso_utc
from ncf_tasks.storage import Storage

if TYPE_CHECKING:
    import polars as pl

TRUE = ("true", "1", "yes", "t", "y")
FALSE = ("false", "0", "no", "f", "n")
COLUMNS = ("item_id", "available", "available_from", "available_until")
SOURCE = ("source_file", "source_row")  # where each row came from: error messages name the file and row


@dataclass(frozen=True)
class Snapshot:
    """One dated catalogue snapshot in the raw prefix: its date and its data files (with their ETags)."""

    date: str
    files: dict[str, str]  # key -> etag

    @property
    def digest(self) -> str:
        """What validation saw: publish refuses a snapshot whose files changed since."""
        return hashlib.sha256(repr(sorted(self.files.items())).encode()).hexdigest()[:16]


def configured(settings: Settings) -> bool:
    return bool(settings.catalog_prefix.strip("/"))


def snapshot_for(storage: Storage, settings: Settings, day: str) -> Snapshot:
    """The newest snapshot dated on or before ``day`` and at most ``catalog_max_age_days`` before it.

    NoDataError when there is none (a configured catalogue that is missing stops the publish: without it
    nothing says which items may be shown)."""
    root = layout.catalog_root(settings.catalog_prefix)
    oldest = dt.date.fromisoformat(day) - dt.timedelta(days=settings.catalog_max_age_days)
    by_date: dict[str, dict[str, str]] = {}
    for o in storage.list(root):
        m = re.fullmatch(r"dt=(\d{4}-\d{2}-\d{2})/([^/]+)", o["key"][len(root) :])
        if m is None or is_marker(m.group(2)):
            continue  # not a data file directly in a dt= folder
        if oldest.isoformat() <= m.group(1) <= day:
            by_date.setdefault(m.group(1), {})[o["key"]] = o["etag"]
    if not by_date:
        raise NoDataError(
            f"no item catalogue snapshot under {storage.uri(root)}dt=.../ dated {oldest} to {day} "
            f"(catalog_prefix={settings.catalog_prefix!r}, catalog_max_age_days={settings.catalog_max_age_days}): "
            "publish needs one to know which items may be shown; write the day's snapshot, or set "
            "catalog_prefix='' to publish without a catalogue"
        )
    newest = max(by_date)
    return Snapshot(newest, by_date[newest])


def read_snapshot(storage: Storage, settings: Settings, snap: Snapshot) -> "pl.DataFrame":
    """The snapshot's files as one frame: ``item_id``, ``available``, ``available_from``, ``available_until``
    as text (parsed by ``parse``), with ``source_file`` and ``source_row`` (1-based data row). DataError for a
    file that is not CSV or Parquet, or cannot be read as one, naming it."""
    import polars as pl

    frames = []
    for key in sorted(snap.files):
        name = storage.uri(key)
        kind = format_of(key)
        if kind is None or kind[0] not in ("csv", "parquet") or kind[1]:
            raise DataError(f"{name}: a catalogue file must be .csv or .parquet (not compressed)")
        data = storage.get_bytes(key)
        try:
            if kind[0] == "csv":
                df = pl.read_csv(io.BytesIO(data), infer_schema=False, raise_if_empty=False)
            else:
                df = pl.read_parquet(io.BytesIO(data))
        except Exception as exc:  # polars raises several error types for malformed input
            raise DataError(f"{name}: not a valid {kind[0].upper()} file: {str(exc).splitlines()[0][:300]}") from None
        missing = [c for c in ("item_id", "available") if c not in df.columns]
        if missing:
            raise DataError(
                f"{name}: required catalogue column(s) {missing} missing; columns present: {quote(df.columns, 300)}"
            )
        try:  # a column of a type that has no text form (a struct, a list) is the file's error, not a crash
            frames.append(df.select(pl.lit(name).alias("source_file"), _row_number(), *_as_text(df)))
        except pl.exceptions.PolarsError as exc:
            raise DataError(
                f"{name}: a catalogue column cannot be read as text: {str(exc).splitlines()[0][:300]}"
            ) from None
    return pl.concat(frames)


def _row_number() -> "pl.Expr":
    import polars as pl

    return pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias("source_row")


def _as_text(df: "pl.DataFrame") -> list["pl.Expr"]:
    """The catalogue's columns as text, whatever the file typed them as (a zoned timestamp on its UTC date)."""
    import polars as pl

    cols = []
    for c in COLUMNS:
        if c not in df.columns:
            cols.append(pl.lit(None, dtype=pl.String).alias(c))
        elif df.schema[c] == pl.String:
            cols.append(pl.col(c))
        elif isinstance(df.schema[c], pl.Datetime) and df.schema[c].time_zone:
            cols.append(pl.col(c).dt.convert_time_zone("UTC").dt.date().cast(pl.String))
        else:
            cols.append(pl.col(c).cast(pl.String))
    return cols


def parse(raw: "pl.DataFrame", settings: Settings) -> tuple["pl.DataFrame", dict[str, "pl.Series"]]:
    """The typed catalogue (``item_id`` normalised text, ``available`` boolean, the two dates) and, per column,
    the rows whose text did not parse (a boolean mask): the caller's rule reports them with file and row."""
    import polars as pl

    flag = pl.col("available").str.strip_chars().str.to_lowercase()
    typed = raw.with_columns(
        normalize_ids(raw["item_id"], settings.id_normalization).alias("item_id"),
        pl.when(flag.is_in(TRUE)).then(True).when(flag.is_in(FALSE)).then(False).otherwise(None).alias("available"),
        *(_date(raw[c]).alias(c) for c in ("available_from", "available_until")),
    )
    bad = {
        c: (raw[c].is_not_null() & (raw[c].str.strip_chars() != "") & typed[c].is_null())
        for c in ("available", "available_from", "available_until")
    }
    return typed, bad


def _date(text: "pl.Series") -> "pl.Series":
    """An ISO date, or the UTC date of an ISO datetime (``rawio.parse_iso_utc``: offset or 'Z'; naive counts
    as UTC); empty text is an open end (null)."""
    import polars as pl

    text = text.str.strip_chars()
    as_date = text.str.to_date("%Y-%m-%d", strict=False)
    as_ts = parse_iso_utc(text).dt.date()
    return pl.select(pl.when(text == "").then(None).otherwise(pl.coalesce(as_date, as_ts))).to_series()


def available_on(items: "pl.DataFrame", day: str) -> "pl.Series":
    """The ``item_id``s of a validated catalogue available on ``day``."""
    import polars as pl

    d = dt.date.fromisoformat(day)
    ok = (
        pl.col("available")
        & (pl.col("available_from").is_null() | (pl.col("available_from") <= d))
        & (pl.col("available_until").is_null() | (pl.col("available_until") >= d))
    )
    return items.filter(ok)["item_id"]


@dataclass(frozen=True)
class Availability:
    """What publish needs: the model's item indices that must not be shown, and where that came from."""

    blocked: np.ndarray  # int64 item_idx, sorted
    snapshot: str  # the snapshot's date
    digest: str
    uri: str
    unlisted: int  # model items the snapshot does not list (blocked too)

    def record(self, n_items: int) -> dict:
        return {
            "snapshot": self.snapshot,
            "digest": self.digest,
            "uri": self.uri,
            "items_blocked": int(self.blocked.size),
            "items_unlisted": self.unlisted,
            "items": n_items,
        }


def availability(storage: Storage, settings: Settings, day: str, items: "pl.DataFrame") -> Availability | None:
    """The catalogue's verdict on a run's items (``items``: its id map, ``item_id``, ``item_idx``) for ``day``;
    None without a configured catalogue. DataError when the snapshot was not validated, or changed since."""
    import polars as pl

    if not configured(settings):
        return None
    snap = snapshot_for(storage, settings, day)
    marker = storage.get_json(layout.catalog_marker(snap.date), default=None)
    if not marker or marker.get("digest") != snap.digest:
        state = "was not validated" if not marker else "changed after its validation"
        raise DataError(
            f"item catalogue snapshot {storage.uri(layout.catalog_partition(settings.catalog_prefix, snap.date))} "
            f"{state} (or it was quarantined): run validate-catalog for {day} first; nothing is published "
            "with an unchecked catalogue"
        )
    lake = storage.read_parquet(layout.catalog_lake_file(snap.date))
    ok = available_on(lake, day)
    blocked = items.filter(~pl.col("item_id").is_in(ok.implode()))["item_idx"].to_numpy().astype(np.int64)
    unlisted = items.filter(~pl.col("item_id").is_in(lake["item_id"].implode())).height
    if items.height and blocked.size == items.height:  # an empty table is a broken join, not a plan
        raise DataError(
            f"item catalogue {storage.uri(layout.catalog_lake_file(snap.date))} leaves none of the run's "
            f"{items.height} items available on {day} ({unlisted} of them not listed at all): the table would be "
            f"empty. The run's ids look like {quote(items['item_id'].head(3).to_list(), 120)}, the catalogue's like "
            f"{quote(lake['item_id'].head(3).to_list(), 120)}: ids written another way?"
        )
    return Availability(
        np.sort(blocked), snap.date, snap.digest, storage.uri(layout.catalog_lake_file(snap.date)), unlisted
    )
