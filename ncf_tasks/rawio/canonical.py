"""Raw columns into the canonical schema: the ``raw_*_col`` mapping, typed casts that name the row of a bad
value, and timestamps (units, ISO 8601 text, time zones) to UTC in [1970, 2200).
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from ncf_tasks.config import Settings, env_name
from ncf_tasks.errors import DataError, quote
from ncf_tasks.rawio.formats import REQUIRED, canonical_schema

if TYPE_CHECKING:
    import polars as pl


TS_MIN, TS_MAX = dt.datetime(1970, 1, 1, tzinfo=dt.UTC), dt.datetime(2200, 1, 1, tzinfo=dt.UTC)


_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def _raw_columns(settings: Settings) -> dict[str, tuple[str, str]]:
    """Canonical column → (raw column name, the setting's environment variable)."""
    fields = {
        "user_id": "raw_user_col",
        "item_id": "raw_item_col",
        "event_ts": "raw_ts_col",
        "event_type": "raw_event_type_col",
        "value": "raw_value_col",
    }
    return {canon: (getattr(settings, f), env_name(f)) for canon, f in fields.items()}


def to_canonical(df: "pl.DataFrame", name: str, settings: Settings) -> "pl.DataFrame":
    """Map raw column names, cast to canonical types and normalise timestamps to UTC."""
    import polars as pl

    mapping = _raw_columns(settings)
    if df.width == 0 and df.height == 0:
        return pl.DataFrame(schema=canonical_schema())
    for canon in REQUIRED:
        raw, env = mapping[canon]
        if raw not in df.columns:
            raise DataError(
                f"{name}: required column '{raw}' (mapped to {canon} by {env}) is missing; "
                f"columns present: {quote(df.columns, 300)}{_header_hint(df.columns, raw, env)}"
            )
    schema = canonical_schema()
    out = []
    for canon, (raw, _env) in mapping.items():
        if raw not in df.columns:
            out.append(pl.lit(None, dtype=schema[canon]).alias(canon))
            continue
        col = df.get_column(raw)
        if canon in ("user_id", "item_id", "event_type"):
            cast = _cast_text(col, name, raw)
            if canon != "event_type":
                cast = normalize_ids(cast, settings.id_normalization)
        elif canon == "value":
            cast = _cast_checked(col, pl.Float64, name, raw, "a number")
        else:
            cast = _parse_ts(col, name, raw, settings.raw_ts_unit)
        out.append(cast.alias(canon))
    return df.select(out)


def normalize_ids(col: "pl.Series", form: str) -> "pl.Series":
    """``col`` in Unicode normal form ``form`` (``id_normalization``); an all-ASCII column (the usual case:
    every byte one character) is returned as it is, without the normalisation pass."""
    if form == "none" or col.len() == 0 or (col.str.len_bytes() == col.str.len_chars()).all():
        return col
    return col.str.normalize(form)


def _header_hint(columns: list[str], raw: str, env: str) -> str:
    """What a missing required column most likely means: another delimiter, or a name that differs only
    in letter case or surrounding spaces."""
    if len(columns) == 1:
        seps = [sep for sep in (";", "\t", "|") if sep in columns[0]]
        if seps:
            return f"; the header holds {seps[0]!r} and no comma: raw CSV files must be comma-separated"
    near = [c for c in columns if c.strip().lower() == raw.lower()]
    if near:
        return f"; {quote(near[0], 80)} differs only in letter case or spaces: rename that column, or set {env} to it"
    return ""


def _cast_text(col: "pl.Series", name: str, raw: str) -> "pl.Series":
    import polars as pl

    if col.dtype == pl.String:
        return col
    if col.dtype.is_numeric() and not col.dtype.is_float():
        return col.cast(pl.String)
    if col.dtype.is_float():
        # 12.0 -> '12': float ids arise from CSV/JSON writers that had a null in the column
        # NaN and inf equal their own floor, and 1e30 is whole but no Int64: each is a bad id, named by row
        whole = col.is_null() | (col.is_finite() & (col == col.floor()) & (col.abs() < 2.0**63))
        _fail_first(~whole, name, raw, col, "an id that is a whole number or text")
        return col.cast(pl.Int64).cast(pl.String)
    if col.dtype == pl.Null or isinstance(col.dtype, (pl.Categorical, pl.Enum)):
        return col.cast(pl.String)  # dictionary-encoded text (pandas 'category') is text
    raise DataError(f"{name}: column '{raw}' has type {col.dtype}; expected text or integer ids")


def _cast_checked(col: "pl.Series", dtype: "pl.DataType", name: str, raw: str, expect: str) -> "pl.Series":
    if col.dtype == dtype:
        return col
    cast = col.cast(dtype, strict=False)
    _fail_first(
        cast.is_null() & col.is_not_null() & (col.cast(str, strict=False).str.strip_chars() != ""),
        name,
        raw,
        col,
        expect,
    )
    return cast


def _parse_ts(col: "pl.Series", name: str, raw: str, unit: str) -> "pl.Series":
    """Epoch numbers (in ``unit``), ISO 8601 text (offset or 'Z'; naive means UTC) or datetimes → UTC,
    within [TS_MIN, TS_MAX): anything outside is a unit or format mistake, named with its row."""
    ts = _to_utc(col, name, raw, unit)
    _fail_first(
        (ts < TS_MIN) | (ts >= TS_MAX),
        name,
        raw,
        col,
        f"a time in [1970, 2200) (epoch numbers are read in unit '{unit}', {env_name('raw_ts_unit')})",
    )
    return ts


def _to_utc(col: "pl.Series", name: str, raw: str, unit: str, given: "pl.Series | None" = None) -> "pl.Series":
    import polars as pl

    given = col if given is None else given  # errors quote the value as the file has it, not as cast

    if isinstance(col.dtype, pl.Datetime):
        out = col.dt.replace_time_zone("UTC") if col.dtype.time_zone is None else col.dt.convert_time_zone("UTC")
        return out.dt.cast_time_unit("us")
    if col.dtype == pl.Date:
        return col.cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    if col.dtype == pl.String:
        # each value on its own: epoch numbers and ISO text may share a file (producers merged into one
        # export), and then a value is judged by the form it has, not by its neighbours' form
        s = col.str.strip_chars()
        numeric = s.str.contains(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$").fill_null(False)  # '1.79568e9' too (float writers)
        mixed = numeric.any()
        if mixed and (numeric | s.is_null()).all():
            return _to_utc(s.cast(pl.Float64), name, raw, unit, given)
        parsed = parse_iso_utc(pl.select(pl.when(~numeric).then(s)).to_series() if mixed else s)
        _fail_first(
            parsed.is_null() & s.is_not_null() & ~numeric,
            name,
            raw,
            col,
            "an ISO 8601 timestamp (e.g. 2026-11-27T02:00:00Z) or an epoch number",
        )
        if not mixed:
            return parsed
        epochs = pl.select(pl.when(numeric).then(s.cast(pl.Float64, strict=False))).to_series()
        return _to_utc(epochs, name, raw, unit, given).zip_with(numeric, parsed)
    if col.dtype.is_numeric():
        secs = col.cast(pl.Float64) * _UNIT_SECONDS[unit]
        lo, hi = TS_MIN.timestamp(), TS_MAX.timestamp()
        bad = secs.is_nan() | (secs < lo) | (secs >= hi)  # before scaling: milliseconds read as seconds overflow
        hint = {u: s for u, s in _UNIT_SECONDS.items() if u != unit}
        _fail_first(
            bad,
            name,
            raw,
            given,
            f"an epoch time in unit '{unit}' between 1970 and 2200 "
            f"({env_name('raw_ts_unit')}; is the unit {' or '.join(repr(u) for u in hint)}?)",
        )
        us = (secs * 1e6).round(0).cast(pl.Int64)
        return pl.from_epoch(us, time_unit="us").dt.replace_time_zone("UTC")
    if col.dtype == pl.Null:
        return col.cast(pl.Datetime("us", "UTC"))
    raise DataError(f"{name}: column '{raw}' has type {col.dtype}; expected a timestamp, ISO text or epoch number")


_FIXED_ISO = r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d{1,6})?Z?$"


def fixed_iso_utc(text: "pl.Expr") -> "pl.Expr":
    """UTC datetimes from the common fixed-width shape ('2026-11-26T10:00:00.123Z', 'T' or ' ', 0-6
    fraction digits, 'Z' or nothing); null for any other text and for impossible dates or times.

    Decoded from fixed character positions (date and time of day through polars' parsers, the fraction
    as an integer scaled by its digit count): about 2x cheaper than chrono's general parser on whole
    strings, and it runs inside a lazy query.
    """
    import polars as pl

    digits = (text.str.len_bytes().cast(pl.Int64) - 20 - text.str.ends_with("Z").cast(pl.Int64)).clip(0, 6)
    frac = text.str.slice(20, digits).cast(pl.Int64, strict=False).fill_null(0) * pl.lit(10, pl.Int64).pow(6 - digits)
    day = text.str.slice(0, 10).str.to_date("%Y-%m-%d", strict=False).cast(pl.Int64)
    time_of_day = text.str.slice(11, 8).str.to_time("%H:%M:%S", strict=False).cast(pl.Int64) // 1000  # ns → us
    us = day * 86_400_000_000 + time_of_day + frac
    return pl.when(text.str.contains(_FIXED_ISO)).then(us).cast(pl.Datetime("us", "UTC"))


def parse_iso_utc(s: "pl.Series") -> "pl.Series":
    """ISO 8601 with an offset ('Z', '+02:00') → UTC; without one it is taken as UTC.

    The common UTC shape goes through ``fixed_iso_utc``; anything else (offsets, impossible dates)
    takes the general path, which yields null where it cannot parse, and the caller names the row.
    """
    import polars as pl

    fast = pl.DataFrame({"s": s}).select(fixed_iso_utc(pl.col("s"))).to_series()
    if fast.null_count() == s.null_count():
        return fast

    has_offset = s.str.contains(r"(Z|[+-]\d{2}:?\d{2})$")  # general path
    norm = s.str.replace(r"Z$", "+00:00").str.replace(" ", "T", literal=True)
    frame = pl.DataFrame({"s": norm, "off": has_offset})
    return frame.select(
        pl.when(pl.col("off"))
        .then(pl.col("s").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_unit="us", time_zone="UTC"))
        .otherwise(
            pl.col("s")
            .str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us")
            .dt.replace_time_zone("UTC")
        )
    ).to_series()


def _fail_first(bad: "pl.Series", name: str, raw: str, col: "pl.Series", expect: str) -> None:
    """Raise naming the first bad row (vectorised: no Python loop over rows)."""
    if not bad.fill_null(False).any():
        return
    idx = bad.fill_null(False).arg_true()
    row = int(idx[0])
    raise DataError(
        f"{name}: row {row + 1}, column {quote(raw)}: value {quote(col[row])} is not {expect} "
        f"({len(idx)} bad value(s) in this file)"
    )
