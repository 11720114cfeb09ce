"""Diagnosis of bad raw files: which line is ragged or not JSON, blank lines, encodings other than UTF-8,
nested JSON values and duplicate keys, so that every refusal names the file, the line and the rule.
"""

from __future__ import annotations

import io
import json
import re
import sys
from typing import TYPE_CHECKING

from ncf_tasks.config import Settings
from ncf_tasks.errors import DataError, clip, quote
from ncf_tasks.rawio.canonical import _raw_columns
from ncf_tasks.rawio.formats import UTF16_BOMS

if TYPE_CHECKING:
    import polars as pl


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


def _not_utf8(data: bytes) -> str:
    """', line N: ...' where text is not UTF-8 (a UTF-16 or Latin-1 export); '' for valid UTF-8."""
    if data[:2] in UTF16_BOMS:
        return ", line 1: the file is UTF-16 (byte order mark); raw files must be UTF-8"
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return (
            f", line {line}: byte 0x{data[exc.start]:02X} at byte {col} of the line is not UTF-8; raw files "
            "must be UTF-8"
        )
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
        lines = (
            pl.read_csv(
                io.BytesIO(unquoted),
                has_header=False,
                separator="\x1f",
                quote_char=None,
                new_columns=["line"],
                infer_schema=False,
            )
            .get_column("line")
            .fill_null("")
        )
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
                raise DataError(
                    f"{name}: line {n}, column {quote(raw)}: a JSON object or array where "
                    f"{'a time' if canon == 'event_ts' else 'text or a number'} is expected"
                )


def _fail_if_json_duplicate_keys(df: "pl.DataFrame", data: bytes, name: str, settings: Settings, array: bool) -> None:
    """An object naming a column twice ({"user_id": "u1", "user_id": "u2"}) is read with its first value,
    silently; which one its producer meant cannot be known, so it is refused. Guarded in bulk: only when a
    column's quoted name occurs in the file more often than the column has values are the records decoded
    one by one (the error path, or a value that happens to spell a column's name)."""
    for raw, _env in _raw_columns(settings).values():
        quoted = json.dumps(raw, ensure_ascii=False).encode()  # as a producer writes it: 'é' itself, not '\u00e9'
        if raw not in df.columns or data.count(quoted) <= df.get_column(raw).is_not_null().sum():
            continue
        records = (
            enumerate(json.loads(data, object_pairs_hook=list), 1)
            if array
            else (
                (n, json.loads(line, object_pairs_hook=list))
                for n, line in enumerate(data.splitlines(), 1)
                if line.strip()
            )
        )
        for n, pairs in records:
            if isinstance(pairs, list) and sum(k == raw for k, _v in pairs) > 1:
                raise DataError(
                    f"{name}: {'object' if array else 'line'} {n}: key {quote(raw)} appears more than once "
                    "in one object; each column must be named once"
                )


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return clip(text[0], 200) if text else type(exc).__name__
