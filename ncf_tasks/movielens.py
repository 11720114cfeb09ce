"""MovieLens ratings as raw daily logs, so real data flows through the same pipeline.

Reads ML-100K ``u.data`` (tab-separated), ML-1M / ML-10M ``ratings.dat`` (``::``-separated) or the
``ratings.csv`` of ML-20M, ML-25M, ML-32M and ml-latest (comma-separated, header
``userId,movieId,rating,timestamp``): user, item, rating, unix time. Every rating is an implicit
positive (the paper's protocol); the rating is kept as ``value`` and ``event_type`` is 'rating'.
MovieTweetings' ``ratings.dat`` has the ML-1M format. A plain ``interactions.csv`` (header
``user_id,item_id,timestamp``, no rating: the shared Last.fm and MovieTweetings files) loads too, with
``value`` 1 and ``event_type`` 'interaction'. The
GroupLens licence forbids redistribution, so the files are read from where the user put them and never
copied into the repository.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

from ncf_tasks import layout
from ncf_tasks.config import Settings
from ncf_tasks.errors import DataError, quote
from ncf_tasks.generate import write_days
from ncf_tasks.storage import Storage

if TYPE_CHECKING:
    import polars as pl


def read_ratings(path: str | Path) -> "pl.DataFrame":
    """Parse u.data or ratings.dat into the canonical schema; errors name the file and the line."""
    import polars as pl

    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: no such file (download MovieLens from GroupLens and pass u.data, ratings.dat or ratings.csv)"
        )
    data = path.read_bytes()
    first_line = data.split(b"\n", 1)[0].strip().replace(b" ", b"").lower()
    plain = first_line == b"user_id,item_id,timestamp"  # no rating column
    header = plain or first_line == b"userid,movieid,rating,timestamp"
    sep = "," if header else "::" if b"::" in data[:4096] else "\t"
    fields = 3 if plain else 4
    # One text column per line, split in bulk: polars' CSV reader takes single-byte separators only.
    lines = pl.read_csv(
        io.BytesIO(data),
        has_header=False,
        separator="\x1f",
        quote_char=None,
        skip_rows=int(header),
        new_columns=["line"],
        infer_schema=False,
    ).get_column("line")
    first = 1 + int(header)  # the file's line number of lines[0]
    parts = lines.str.split(sep)
    bad = (parts.list.len() != fields).arg_true()
    if len(bad):
        n = int(bad[0])
        raise DataError(
            f"{path}: line {n + first} has {parts[n].len()} fields separated by {sep!r}; expected {fields} "
            f"({'user, item, unix time' if plain else 'user, item, rating, unix time'})"
        )
    df = pl.DataFrame(
        {
            "user_id": parts.list.get(0).str.strip_chars(),
            "item_id": parts.list.get(1).str.strip_chars(),
            "rating": pl.repeat(1.0, len(parts), eager=True)
            if plain
            else parts.list.get(2).str.strip_chars().cast(pl.Float64, strict=False),
            "ts": parts.list.get(fields - 1).str.strip_chars().cast(pl.Int64, strict=False),
        }
    )
    for col, what in (("rating", "a number"), ("ts", "a unix time in seconds")):
        nulls = df.get_column(col).is_null().arg_true()
        if len(nulls):
            n = int(nulls[0])
            raise DataError(f"{path}: line {n + first}: field '{col}' is not {what}: {quote(lines[n])}")
    return df.select(
        "user_id",
        "item_id",
        pl.from_epoch("ts", time_unit="s").dt.cast_time_unit("us").dt.replace_time_zone("UTC").alias("event_ts"),
        pl.lit("interaction" if plain else "rating").alias("event_type"),
        pl.col("rating").alias("value"),
    ).sort("event_ts", "user_id", "item_id")


def run_load_movielens(settings: Settings, *, path: str, fmt: str = "parquet") -> dict:
    """Write the ratings as ``raw/interactions/dt=D/movielens-0000.<fmt>``, one folder per day."""
    storage = Storage(settings)
    df = read_ratings(path)
    files = write_days(storage, df, fmt=fmt, files_per_day=1, stem="movielens")
    days = sorted({layout.date_of_partition(f["key"]) for f in files})
    return {
        "rows": df.height,
        "users": df.get_column("user_id").n_unique(),
        "items": df.get_column("item_id").n_unique(),
        "files": len(files),
        "first_day": days[0],
        "last_day": days[-1],
        "days": len(days),
        "uri": storage.uri(layout.raw_root()),
    }
