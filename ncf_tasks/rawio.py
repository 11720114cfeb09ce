"""Raw interaction logs: reading any supported file into the canonical schema, and writing daily files.

Supported raw formats, chosen by file name (any letter case): ``.csv``, ``.jsonl``/``.ndjson``/``.json``
(JSON Lines, or one JSON array of objects: row N is then its Nth object), ``.parquet``; each may end in
``.gz``. Names starting with ``.`` or ``_`` are markers
(``_SUCCESS``, ``.crc``) and are ignored; any other name is a file of the day that must be read, so an
unsupported one fails the day instead of being skipped. Line endings LF, CRLF and CR alone are read
(a quoted field may span lines, except in a CR-only file, whose CRs all become line ends); a UTF-8
byte order mark is skipped; other encodings than UTF-8 are refused.
Raw column names are mapped to the canonical ones by the ``raw_*_col`` settings. Every error names
the file, the column and — for a value that does not parse — the row (1-based data row; for CSV and
JSON Lines that is also the line after the header), quoting values bounded (``errors.quote``).
Timestamps must lie in [1970, 2200): anything else is a unit or format mistake, named with the unit.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import itertools
import json
import re
import sys
from typing import TYPE_CHECKING, Iterator, NoReturn

from ncf_tasks.config import Settings, env_name
from ncf_tasks.errors import DataError, clip, quote

if TYPE_CHECKING:
    import polars as pl

CANONICAL = ("user_id", "item_id", "event_ts", "event_type", "value")
REQUIRED = ("user_id", "item_id", "event_ts")
FORMATS = ("csv", "jsonl", "parquet")
UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
PIECE_LINE_MAX = 1 << 20  # read_csv_pieces carries at most this much of an unfinished line into the next piece
GUNZIP_STEP = 64 << 20  # bytes of output per decompression step: the bomb check's granularity
EXTENSIONS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
TS_MIN, TS_MAX = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc), dt.datetime(2200, 1, 1, tzinfo=dt.timezone.utc)
_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def canonical_schema() -> "dict[str, pl.DataType]":
    import polars as pl

    return {
        "user_id": pl.String,
        "item_id": pl.String,
        "event_ts": pl.Datetime("us", "UTC"),
        "event_type": pl.String,
        "value": pl.Float64,
    }


def is_marker(name: str) -> bool:
    """_SUCCESS, .crc and friends: written by producers next to the data, not data themselves."""
    return name.rsplit("/", 1)[-1].startswith((".", "_"))


def format_of(name: str) -> tuple[str, bool] | None:
    """(format, gzipped) from a file name (case-insensitive), or None for markers and unsupported names."""
    base = name.rsplit("/", 1)[-1].lower()
    if is_marker(base):
        return None
    gz = base.endswith(".gz")
    stem = base[:-3] if gz else base
    for ext, fmt in EXTENSIONS.items():
        if stem.endswith(ext):
            return fmt, gz
    return None


def refuse_oversized(name: str, size: int, settings: Settings) -> NoReturn:
    """The error for a raw file past ``raw_max_file_mb`` (a task holds a file whole)."""
    raise DataError(f"{name}: {size / 1e6:,.1f} MB, more than {env_name('raw_max_file_mb')}="
                    f"{settings.raw_max_file_mb} MB; split the day into several files")


def read_raw(data: bytes, name: str, settings: Settings) -> "pl.DataFrame":
    """Parse one raw file's bytes and return it in the canonical schema (nulls kept for validation)."""
    import polars as pl

    kind = format_of(name)
    if kind is None:
        raise DataError(f"{name}: unsupported file type; expected one of "
                        f"{sorted(EXTENSIONS)} (optionally .gz)")
    fmt, gz = kind
    limit = settings.raw_max_file_mb * 1_000_000
    if len(data) > limit:
        refuse_oversized(name, len(data), settings)
    if gz:
        data = _gunzip(data, name, limit)
    if fmt != "parquet" and data[:2] in UTF16_BOMS:  # parsed as UTF-8 it is NUL-riddled text, columns unfound
        raise DataError(f"{name}: not a valid {fmt.upper()} file{_not_utf8(data)}")
    if fmt != "parquet" and data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte order mark (spreadsheet exports): polars' JSON reader chokes on it
    if fmt != "parquet" and b"\r" in data and b"\n" not in data:
        data = data.replace(b"\r", b"\n")  # CR alone ends lines (classic Mac): polars knows LF and CRLF
    if fmt == "csv":
        fast = _csv_fast(data, name, settings)
        if fast is not None:
            return fast
    array = fmt == "jsonl" and re.match(rb"\s*\[", data) is not None  # one array of objects: a .json export
    try:
        if fmt == "csv":
            # Everything as text first: ids like '00123' must stay strings, and casting ourselves lets
            # the error name the row of a bad value.
            df = pl.read_csv(io.BytesIO(data), infer_schema=False, raise_if_empty=False)
        elif array:
            df = pl.read_json(io.BytesIO(data), infer_schema_length=None)
        elif fmt == "jsonl":
            df = pl.read_ndjson(io.BytesIO(data), infer_schema_length=None) if data.strip() else pl.DataFrame()
        else:
            df = pl.read_parquet(io.BytesIO(data))
    except Exception as exc:  # polars raises several error types for malformed input
        what = f"{fmt.upper()} file"
        if array:
            what, where = "JSON array of objects", _not_utf8(data)
        else:
            where = "" if fmt == "parquet" else _not_utf8(data) or (_csv_bad_line(data) if fmt == "csv" else
                                                                  _json_bad_line(data))
        raise DataError(f"{name}: not a valid {what}{where}: {_first_line(exc)}") from None
    dup = [c for c in df.columns if re.search(r"_duplicated_\d+$", c)]
    if dup:
        raise DataError(f"{name}: column {quote(re.sub(r'_duplicated_[0-9]+$', '', dup[0]))} appears more than once "
                        "in the header; each column must be named once")
    if fmt == "csv":
        if df.height and df.null_count().sum_horizontal().item():
            df = _without_blank_lines(df, data, name)
        lines_after_header = data.strip().count(b"\n")
        if df.height == 0 and lines_after_header:
            raise DataError(f"{name}: not a valid CSV file: {lines_after_header} line(s) after the header "
                            "but no row parsed (line endings or quoting not understood)")
    if fmt == "jsonl":
        _fail_if_json_structures(df, data, name, settings)
        _fail_if_json_duplicate_keys(df, data, name, settings, array)
    return to_canonical(df, name, settings)


def read_csv_pieces(pieces: Iterator[bytes], name: str, settings: Settings) -> "pl.DataFrame | None":
    """A plain CSV file parsed as its pieces arrive (``Storage.iter_bytes``), so that neither the file's bytes
    nor the parser's working set is ever held whole: each piece, cut after its last line end and carrying
    the rest into the next, is parsed by ``_csv_fast`` under the file's header.

    Returns None whenever the whole file must be read by ``read_raw`` instead, which then names any error
    with its true row: a quote character (a quoted field may hold a line end), a piece ``_csv_fast``
    declines, any empty field (telling a blank or truncated line from an empty value needs the whole
    file), a line longer than ``PIECE_LINE_MAX`` (a file without line ends), a byte order mark, or no rows.
    """
    import polars as pl

    header, carry, frames, size = None, b"", [], 0
    for piece in itertools.chain(pieces, [b""]):  # b"": the end, which flushes the carry
        size += len(piece)
        if size > settings.raw_max_file_mb * 1_000_000:
            refuse_oversized(name, size, settings)
        data = carry + piece if carry else piece
        if header is None:
            if data[:3] == b"\xef\xbb\xbf" or data[:2] in UTF16_BOMS:
                return None
            end = data.find(b"\n")
            if end < 0:
                if not piece or len(data) > PIECE_LINE_MAX:
                    return None
                carry = data
                continue
            header, data = data[:end + 1], data[end + 1:]
        cut = data.rfind(b"\n") + 1 if piece else len(data)
        lines, carry = data[:cut], data[cut:]
        if len(carry) > PIECE_LINE_MAX:
            return None  # no line end for a long way (a CR-only file, one giant field): not worth carrying
        if not lines.strip():
            continue
        if b'"' in header or b'"' in lines:
            return None
        frame = _csv_fast(header + lines, name, settings, gaps=False)
        if frame is None:
            return None
        frames.append(frame)
    return pl.concat(frames, rechunk=False) if frames else None


def _csv_fast(data: bytes, name: str, settings: Settings, gaps: bool = True) -> "pl.DataFrame | None":
    """The common CSV case in one streaming query: text ids, fixed-width UTC timestamps, numeric values.

    Parsing, casting and timestamp decoding run morsel by morsel on all cores, so the file's text
    columns are never held whole (about half the CPU time and a fraction of the memory of reading
    all text first). Returns None whenever anything is off (a value or timestamp of another shape, a
    missing column, a parse error): the general path then handles the file or names the bad row.
    ``gaps=False``: also None for any empty field (``read_csv_pieces``, which sees a piece of the file).
    """
    import polars as pl

    cols = {canon: raw for canon, (raw, _env) in _raw_columns(settings).items()}
    try:
        lf = pl.scan_csv(io.BytesIO(data), infer_schema=False, raise_if_empty=False)
        header = lf.collect_schema().names()
        if not header or any(cols[c] not in header for c in REQUIRED) or any("_duplicated_" in h for h in header):
            return None  # the general path names what is wrong
        schema = canonical_schema()
        exprs, checks = [], []
        for canon, raw in cols.items():
            if raw not in header:
                exprs.append(pl.lit(None, dtype=schema[canon]).alias(canon))
                continue
            text = pl.col(raw)
            if canon == "event_ts":
                out = fixed_iso_utc(text)
            elif canon == "value":
                out = text.cast(pl.Float64, strict=False)
            else:
                exprs.append(text.alias(canon))
                continue
            exprs.append(out.alias(canon))
            checks.append(out.is_not_null() | text.is_null())
        df = lf.select(
            *exprs,
            pl.all_horizontal(checks).alias("_ok"),
            pl.any_horizontal(pl.col(c).is_null() for c in header).alias("_gap"),
        ).collect(engine="streaming")
    except Exception:  # noqa: BLE001 - the general path reports it properly
        return None
    if df.height and not df.get_column("_ok").all():
        return None
    ts = df.get_column("event_ts").drop_nulls()
    if ts.len() and (ts.min() < TS_MIN or ts.max() >= TS_MAX):
        return None  # the general path names the row
    if df.height and df.get_column("_gap").any():
        if not gaps:
            return None
        df = _without_blank_lines(df, data, name)
    return df.drop("_ok", "_gap")


def _raw_columns(settings: Settings) -> dict[str, tuple[str, str]]:
    """Canonical column → (raw column name, the setting's environment variable)."""
    fields = {"user_id": "raw_user_col", "item_id": "raw_item_col", "event_ts": "raw_ts_col",
              "event_type": "raw_event_type_col", "value": "raw_value_col"}
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
        elif canon == "value":
            cast = _cast_checked(col, pl.Float64, name, raw, "a number")
        else:
            cast = _parse_ts(col, name, raw, settings.raw_ts_unit)
        out.append(cast.alias(canon))
    return df.select(out)


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
        whole = col.is_null() | (col.is_finite() & (col == col.floor()) & (col.abs() < 2.0 ** 63))
        _fail_first(~whole, name, raw, col, "an id that is a whole number or text")
        return col.cast(pl.Int64).cast(pl.String)
    if col.dtype == pl.Null or isinstance(col.dtype, (pl.Categorical, pl.Enum)):
        return col.cast(pl.String)  # dictionary-encoded text (pandas 'category') is text
    raise DataError(f"{name}: column '{raw}' has type {col.dtype}; expected text or integer ids")


def _cast_checked(col: "pl.Series", dtype: "pl.DataType", name: str, raw: str, expect: str) -> "pl.Series":
    if col.dtype == dtype:
        return col
    cast = col.cast(dtype, strict=False)
    _fail_first(cast.is_null() & col.is_not_null() & (col.cast(str, strict=False).str.strip_chars() != ""),
                name, raw, col, expect)
    return cast


def _parse_ts(col: "pl.Series", name: str, raw: str, unit: str) -> "pl.Series":
    """Epoch numbers (in ``unit``), ISO 8601 text (offset or 'Z'; naive means UTC) or datetimes → UTC,
    within [TS_MIN, TS_MAX): anything outside is a unit or format mistake, named with its row."""
    ts = _to_utc(col, name, raw, unit)
    _fail_first((ts < TS_MIN) | (ts >= TS_MAX), name, raw, col,
                f"a time in [1970, 2200) (epoch numbers are read in unit '{unit}', {env_name('raw_ts_unit')})")
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
        parsed = _parse_iso(pl.select(pl.when(~numeric).then(s)).to_series() if mixed else s)
        _fail_first(parsed.is_null() & s.is_not_null() & ~numeric, name, raw, col,
                    "an ISO 8601 timestamp (e.g. 2026-11-27T02:00:00Z) or an epoch number")
        if not mixed:
            return parsed
        epochs = pl.select(pl.when(numeric).then(s.cast(pl.Float64, strict=False))).to_series()
        return _to_utc(epochs, name, raw, unit, given).zip_with(numeric, parsed)
    if col.dtype.is_numeric():
        secs = col.cast(pl.Float64) * _UNIT_SECONDS[unit]
        lo, hi = TS_MIN.timestamp(), TS_MAX.timestamp()
        bad = secs.is_nan() | (secs < lo) | (secs >= hi)  # before scaling: milliseconds read as seconds overflow
        hint = {u: s for u, s in _UNIT_SECONDS.items() if u != unit}
        _fail_first(bad, name, raw, given, f"an epoch time in unit '{unit}' between 1970 and 2200 "
                    f"({env_name('raw_ts_unit')}; is the unit {' or '.join(repr(u) for u in hint)}?)")
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


def _parse_iso(s: "pl.Series") -> "pl.Series":
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
        .otherwise(pl.col("s").str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False, time_unit="us")
                   .dt.replace_time_zone("UTC"))
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


def _without_blank_lines(df: "pl.DataFrame", data: bytes, name: str) -> "pl.DataFrame":
    """Called when a CSV frame has nulls: polars fills short rows with nulls, so tell a truncated line
    apart from a genuinely empty field (DataError naming the line), and drop the rows that are blank
    lines (empty or whitespace only: a trailing blank line is what many writers end a file with)."""
    records = _csv_records(data)
    if records is None:
        return df
    fields, blank = records
    where = _first_ragged(fields, blank)
    if where:
        raise DataError(f"{name}: not a valid CSV file{where}")
    rows = blank.slice(1)  # the header is the first record; polars gives each later line a row
    return df.filter(~rows) if rows.any() and rows.len() == df.height else df


def _gunzip(data: bytes, name: str, limit: int) -> bytes:
    """Every gzip member of ``data``, decompressed in bounded steps, refusing more than ``limit`` bytes of
    output: a small file that expands without end (a decompression bomb) fails naming the file instead of
    taking the worker down with an out-of-memory kill, which names nothing."""
    import zlib

    parts, total, rest = [], 0, data
    try:
        while rest.strip(b"\x00"):  # members follow each other (concatenated .gz); zero padding may end it
            inflate = zlib.decompressobj(wbits=31)  # 31: a gzip header and trailer
            pending = rest
            while not inflate.eof:
                chunk = inflate.decompress(pending, GUNZIP_STEP)
                total += len(chunk)
                if total > limit:
                    raise DataError(f"{name}: decompresses to more than {env_name('raw_max_file_mb')}="
                                    f"{limit // 1_000_000} MB (from {len(data) / 1e6:,.1f} MB); refused before it "
                                    "fills the worker's memory: split the day into several files")
                parts.append(chunk)
                pending = inflate.unconsumed_tail
                if not chunk and not pending:
                    raise EOFError("Compressed file ended before the end-of-stream marker was reached")
            rest = inflate.unused_data
    except (zlib.error, EOFError) as exc:
        raise DataError(f"{name}: not a valid gzip file: {exc}") from None
    return b"".join(parts)


def _not_utf8(data: bytes) -> str:
    """', line N: ...' where text is not UTF-8 (a UTF-16 or Latin-1 export); '' for valid UTF-8."""
    if data[:2] in UTF16_BOMS:
        return ", line 1: the file is UTF-16 (byte order mark); raw files must be UTF-8"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return (f", line {line}: byte 0x{data[exc.start]:02X} at byte {col} of the line is not UTF-8; raw files "
                "must be UTF-8")
    return ""


def _csv_records(data: bytes) -> "tuple[pl.Series, pl.Series] | None":
    """(field count, blank) of every record, the header first, found in bulk; None if unreadable.

    Quoted fields are removed first (one regex over the bytes: a quoted field may hold commas, escaped
    quotes and line breaks), so each remaining line is one record and its commas are its separators.
    Records are counted as lines (the header is line 1); that equals the physical line unless a quoted
    field spans lines."""
    import polars as pl

    unquoted = re.sub(rb'"[^"]*"', b"", data)
    try:
        lines = pl.read_csv(io.BytesIO(unquoted), has_header=False, separator="\x1f", quote_char=None,
                            new_columns=["line"], infer_schema=False).get_column("line").fill_null("")
    except Exception:
        return None
    return lines.str.count_matches(",", literal=True) + 1, lines.str.strip_chars() == ""


def _first_ragged(fields: "pl.Series", blank: "pl.Series") -> str:
    """', line N: K fields, header has H' for the first record (blank lines aside) of another width."""
    bad = ((fields != fields[0]) & ~blank).arg_true()
    if len(bad) == 0:
        return ""
    n = int(bad[0])
    return f", line {n + 1}: {fields[n]} fields where the header has {fields[0]}"


def _csv_bad_line(data: bytes) -> str:
    """', line N: ...' of the first ragged record, for a file polars failed to parse ('' if none found)."""
    records = _csv_records(data)
    return _first_ragged(*records) if records is not None else ""


def _json_bad_line(data: bytes) -> str:
    """', line N' of the first line that is not a JSON object. Only on a file that already failed to
    parse: the lines are decoded one by one up to the bad one, which names it."""
    for n, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            if not isinstance(json.loads(line), dict):
                return f", line {n}: not a JSON object"
        except ValueError as exc:
            return f", line {n}: {clip(str(exc), 200)}"
        except RecursionError:  # json's decoder recurses per level of nesting
            return f", line {n}: nested deeper than {sys.getrecursionlimit()} levels"
    return ""


def _fail_if_json_structures(df: "pl.DataFrame", data: bytes, name: str, settings: Settings) -> None:
    """polars turns an object or array mixed into a text column into its JSON text ('{"id": "u1"}');
    an id, type or time must be a scalar. Checked on the raw lines only when a value looks like one."""
    import polars as pl

    for canon, (raw, _env) in _raw_columns(settings).items():
        if canon == "value" or raw not in df.columns or df.schema[raw] != pl.String:
            continue
        if not df.get_column(raw).str.starts_with("{").any() and not df.get_column(raw).str.starts_with("[").any():
            continue
        key = re.compile(rb'"' + re.escape(raw.encode()) + rb'"\s*:\s*[\[{]')
        for n, line in enumerate(data.splitlines(), 1):  # error path: the file holds such a value
            if key.search(line):
                raise DataError(f"{name}: line {n}, column {quote(raw)}: a JSON object or array where "
                                f"{'a time' if canon == 'event_ts' else 'text or a number'} is expected")


def _fail_if_json_duplicate_keys(df: "pl.DataFrame", data: bytes, name: str, settings: Settings, array: bool) -> None:
    """An object naming a column twice ({"user_id": "u1", "user_id": "u2"}) is read with its first value,
    silently; which one its producer meant cannot be known, so it is refused. Guarded in bulk: only when a
    column's quoted name occurs in the file more often than the column has values are the records decoded
    one by one (the error path, or a value that happens to spell a column's name)."""
    for raw, _env in _raw_columns(settings).values():
        quoted = json.dumps(raw, ensure_ascii=False).encode()  # as a producer writes it: 'é' itself, not '\u00e9'
        if raw not in df.columns or data.count(quoted) <= df.get_column(raw).is_not_null().sum():
            continue
        records = (enumerate(json.loads(data, object_pairs_hook=list), 1) if array else
                   ((n, json.loads(line, object_pairs_hook=list)) for n, line in enumerate(data.splitlines(), 1)
                    if line.strip()))
        for n, pairs in records:
            if isinstance(pairs, list) and sum(k == raw for k, _v in pairs) > 1:
                raise DataError(f"{name}: {'object' if array else 'line'} {n}: key {quote(raw)} appears more than once "
                                "in one object; each column must be named once")


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return clip(text[0], 200) if text else type(exc).__name__


# -- writing raw files (generator, MovieLens loader, tests) -----------------------------------------

def encode(df: "pl.DataFrame", fmt: str, gz: bool = False) -> bytes:
    """One raw file's bytes. Timestamps are written as ISO 8601 UTC text in CSV and JSON Lines."""
    import polars as pl

    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r}: allowed values are {list(FORMATS)}")
    if fmt != "parquet":
        df = df.with_columns(
            pl.col(c).dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ") for c, t in df.schema.items() if isinstance(t, pl.Datetime)
        )
    buf = io.BytesIO()
    if fmt == "csv":
        df.write_csv(buf)
    elif fmt == "jsonl":
        df.write_ndjson(buf)
    else:
        df.write_parquet(buf)
    data = buf.getvalue()
    return gzip.compress(data, compresslevel=1) if gz else data


def file_name(stem: str, fmt: str, gz: bool) -> str:
    return f"{stem}.{fmt}" + (".gz" if gz else "")
