"""Raw file formats: which names are read (and as what), the canonical schema, the size limit and gzip
(with its bomb check), and the writer of daily raw files (``encode``, ``file_name``).
"""

from __future__ import annotations

import gzip
import io
from typing import TYPE_CHECKING, NoReturn

from ncf_tasks.config import Settings, env_name
from ncf_tasks.errors import DataError

if TYPE_CHECKING:
    import polars as pl


CANONICAL = ("user_id", "item_id", "event_ts", "event_type", "value")


REQUIRED = ("user_id", "item_id", "event_ts")


FORMATS = ("csv", "jsonl", "parquet")


UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


GUNZIP_STEP = 64 << 20  # bytes of output per decompression step: the bomb check's granularity


EXTENSIONS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}


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
    raise DataError(
        f"{name}: {size / 1e6:,.1f} MB, more than {env_name('raw_max_file_mb')}="
        f"{settings.raw_max_file_mb} MB; split the day into several files"
    )


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
                    raise DataError(
                        f"{name}: decompresses to more than {env_name('raw_max_file_mb')}="
                        f"{limit // 1_000_000} MB (from {len(data) / 1e6:,.1f} MB); refused before it "
                        "fills the worker's memory: split the day into several files"
                    )
                parts.append(chunk)
                pending = inflate.unconsumed_tail
                if not chunk and not pending:
                    raise EOFError("Compressed file ended before the end-of-stream marker was reached")
            rest = inflate.unused_data
    except (zlib.error, EOFError) as exc:
        raise DataError(f"{name}: not a valid gzip file: {exc}") from None
    return b"".join(parts)


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
