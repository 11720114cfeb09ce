"""The fast CSV path: a plain CSV file parsed with a typed schema in one pass (``_csv_fast``), or piece by
piece as it downloads (``read_csv_pieces``); anything irregular is declined (None) to the general reader.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ncf_tasks.config import Settings
from ncf_tasks.rawio.canonical import TS_MAX, TS_MIN, _raw_columns, fixed_iso_utc
from ncf_tasks.rawio.diagnose import _without_blank_lines
from ncf_tasks.rawio.formats import REQUIRED, UTF16_BOMS, canonical_schema, refuse_oversized

if TYPE_CHECKING:
    import polars as pl


PIECE_LINE_MAX = 1 << 20  # read_csv_pieces carries at most this much of an unfinished line into the next piece


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
            header, data = data[: end + 1], data[end + 1 :]
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
