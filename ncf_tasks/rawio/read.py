"""``read_raw``: one raw file's bytes in the canonical schema, whatever its format."""

from __future__ import annotations

import io
import re
from typing import TYPE_CHECKING

from ncf_tasks.config import Settings
from ncf_tasks.errors import DataError, quote
from ncf_tasks.rawio.canonical import to_canonical
from ncf_tasks.rawio.csv_fast import _csv_fast
from ncf_tasks.rawio.diagnose import (
    _csv_bad_line,
    _fail_if_json_duplicate_keys,
    _fail_if_json_structures,
    _first_line,
    _json_bad_line,
    _not_utf8,
    _without_blank_lines,
)
from ncf_tasks.rawio.formats import EXTENSIONS, UTF16_BOMS, _gunzip, format_of, refuse_oversized

if TYPE_CHECKING:
    import polars as pl


def read_raw(data: bytes, name: str, settings: Settings) -> "pl.DataFrame":
    """Parse one raw file's bytes and return it in the canonical schema (nulls kept for validation)."""
    import polars as pl

    kind = format_of(name)
    if kind is None:
        raise DataError(f"{name}: unsupported file type; expected one of {sorted(EXTENSIONS)} (optionally .gz)")
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
            where = (
                ""
                if fmt == "parquet"
                else _not_utf8(data) or (_csv_bad_line(data) if fmt == "csv" else _json_bad_line(data))
            )
        raise DataError(f"{name}: not a valid {what}{where}: {_first_line(exc)}") from None
    dup = [c for c in df.columns if re.search(r"_duplicated_\d+$", c)]
    if dup:
        raise DataError(
            f"{name}: column {quote(re.sub(r'_duplicated_[0-9]+$', '', dup[0]))} appears more than once "
            "in the header; each column must be named once"
        )
    if fmt == "csv":
        if df.height and df.null_count().sum_horizontal().item():
            df = _without_blank_lines(df, data, name)
        lines_after_header = data.strip().count(b"\n")
        if df.height == 0 and lines_after_header:
            raise DataError(
                f"{name}: not a valid CSV file: {lines_after_header} line(s) after the header "
                "but no row parsed (line endings or quoting not understood)"
            )
    if fmt == "jsonl":
        _fail_if_json_structures(df, data, name, settings)
        _fail_if_json_duplicate_keys(df, data, name, settings, array)
    return to_canonical(df, name, settings)
