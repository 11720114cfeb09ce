"""What a run left in the bucket: objects under the main prefixes, with Parquet row counts.

Row counts come from Parquet footers (polars reads metadata only), so this stays cheap on big tables.
"""

from __future__ import annotations

from ncf_tasks import layout
from ncf_tasks.config import Settings
from ncf_tasks.storage import Storage

DEFAULT_PREFIXES = (layout.raw_root(), "lake/", "reports/", layout.RUNS, "models/", "recs/")


def run_inventory(settings: Settings, *, prefixes: tuple[str, ...] | None = None) -> dict:
    """``prefixes``: the main ones, and the raw item catalogue's when one is configured."""
    import polars as pl

    storage = Storage(settings)
    if prefixes is None:
        catalog = layout.catalog_root(settings.catalog_prefix)
        prefixes = DEFAULT_PREFIXES + ((catalog,) if catalog else ())
    out: dict[str, dict] = {}
    for prefix in prefixes:
        objects = storage.list(prefix)
        entry: dict = {"objects": len(objects), "bytes": sum(o["size"] for o in objects)}
        parquet = [o["key"] for o in objects if o["key"].endswith(".parquet")]
        if parquet and prefix != layout.raw_root():  # raw files are not all Parquet
            counts = [storage.scan_parquet(k).select(pl.len()).collect().item() for k in parquet]
            entry["parquet"] = {k: c for k, c in zip(parquet, counts)}
        out[prefix] = entry
    return {"bucket": storage.bucket, "endpoint": settings.s3_endpoint_url or "aws", "prefixes": out}


def format_inventory(inv: dict) -> str:
    lines = [f"bucket s3://{inv['bucket']} at {inv['endpoint']}"]
    for prefix, e in inv["prefixes"].items():
        lines.append(f"  {prefix:<20} {e['objects']:>6} objects {e['bytes'] / 1e6:>9.2f} MB")
        for key, rows in e.get("parquet", {}).items():
            lines.append(f"      {key}  ({rows:,} rows)")
    return "\n".join(lines)
