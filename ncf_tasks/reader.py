"""For downstream jobs: read the newest complete top-K table by following ``recs/topk/_latest.json``.

    from ncf_tasks.reader import recommend
    recs = recommend(["u000042", "someone-new"], k=10)   # user_id, rank, item_id, score, source

``recommend`` answers every user id asked for: its list from the table (``source`` 'model'), or the published
fallback list for a user the table has no list for (new, too few interactions: ``source`` 'fallback'). ``load_latest`` is the whole
table, lazily. The pointer is written last and atomically, so whatever it names is complete; a publish in
progress or a crashed one is invisible here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ncf_tasks import layout
from ncf_tasks.artifacts import RunArtifacts
from ncf_tasks.config import Settings
from ncf_tasks.errors import NoDataError
from ncf_tasks.storage import Storage

if TYPE_CHECKING:
    import polars as pl


def latest_pointer(settings: Settings | None = None) -> dict:
    storage = Storage(settings or Settings.from_env())
    pointer = storage.get_json(layout.latest_pointer(), default=None)
    if pointer is None:
        raise NoDataError(f"nothing published yet: {storage.uri(layout.latest_pointer())} does not exist")
    return pointer


def load_latest(settings: Settings | None = None) -> "pl.LazyFrame":
    """The latest table as a polars LazyFrame (columns: user_id, rank, item_id, score, model_run_id, model, generated_at)."""
    settings = settings or Settings.from_env()
    return Storage(settings).scan_parquet(latest_pointer(settings)["files"])


def load_fallback(settings: Settings | None = None) -> "pl.DataFrame":
    """The fallback list published with the latest table (rank, item_id, score, model_run_id, generated_at)."""
    settings = settings or Settings.from_env()
    pointer = latest_pointer(settings)
    if not pointer.get("fallback"):
        raise NoDataError(
            f"the table of run {pointer['run_id']} was published without a fallback list (before fallbacks "
            "existed): publish a run again"
        )
    return Storage(settings).read_parquet(pointer["fallback"])


def recommend(user_ids, k: int | None = None, settings: Settings | None = None) -> "pl.DataFrame":
    """Each of ``user_ids``' top ``k`` (default and at most: the table's K) as rows ``user_id, rank, item_id,
    score, source``, users in the order asked (repeats once): the table's list (``source`` 'model'), or for a
    user the table does not know the fallback list (``source`` 'fallback'; its scores are weighted counts, not
    the model's). A known user's list is never topped up here: the reader does not know which items the user
    has seen, and the table holds none of them."""
    import polars as pl

    from ncf_tasks.errors import ConfigError

    settings = settings or Settings.from_env()
    pointer = latest_pointer(settings)
    if k is not None and not 1 <= k <= pointer["k"]:
        raise ConfigError(f"recommend: k={k}; the table of run {pointer['run_id']} holds 1..{pointer['k']} per user")
    k = pointer["k"] if k is None else k
    asked = (
        pl.DataFrame({"user_id": pl.Series(list(user_ids), dtype=pl.String)})
        .unique(maintain_order=True)
        .with_row_index("_order")
    )
    own = (
        Storage(settings)
        .fetch_parquet(pointer["files"])  # each part one GET, filtered in memory (a lazy S3 scan: 40x slower)
        .filter(pl.col("user_id").is_in(asked["user_id"].implode()) & (pl.col("rank") <= k))
        .select("user_id", "rank", "item_id", "score")
        .collect()
        .with_columns(pl.lit("model").alias("source"))
    )
    fallback = load_fallback(settings).head(k).select(pl.col("rank").cast(pl.Int16), "item_id", "score")
    unknown = asked.join(own.select("user_id").unique(), on="user_id", how="anti").select("user_id")
    fill = unknown.join(fallback, how="cross").with_columns(pl.lit("fallback").alias("source"))
    rows = pl.concat([own.with_columns(pl.col("rank").cast(pl.Int16)), fill.select(own.columns)])
    return rows.join(asked, on="user_id").sort("_order", "rank").select("user_id", "rank", "item_id", "score", "source")


def show_latest(settings: Settings, *, users: int = 3, limit: int = 10) -> dict:
    """The pointer and the first ``limit`` recommendations of a few users (CLI ``show-latest``)."""
    import polars as pl

    pointer = latest_pointer(settings)
    lf = load_latest(settings)
    first = lf.select("user_id").unique().sort("user_id").head(users).collect()["user_id"]
    sample = (
        lf.filter(pl.col("user_id").is_in(first.implode()) & (pl.col("rank") <= limit))
        .sort("user_id", "rank")
        .collect()
    )
    recs = {
        u: g.select("rank", "item_id", "score").rows() for (u,), g in sample.group_by("user_id", maintain_order=True)
    }
    run = RunArtifacts(Storage(settings), pointer["run_id"])
    return {
        "pointer": pointer,
        "metrics": run.metrics(required=False),
        "report_uri": run.uri(run.REPORT),
        "sample": {u: [[r, i, round(float(s), 4)] for r, i, s in rows] for u, rows in recs.items()},
    }


def format_latest(out: dict) -> str:
    """The metrics table, the report, the table and a few users' lists, for a person."""
    p, m = out["pointer"], out.get("metrics")
    lines = []
    if m:
        k = m["k"]
        lines.append(f"{'model':<12} {'HR@' + str(k):>8} {'NDCG@' + str(k):>8}")
        lines += [f"{name:<12} {v[f'hr@{k}']:>8.4f} {v[f'ndcg@{k}']:>8.4f}" for name, v in m["models"].items()]
        lines.append("gate: " + "; ".join(m["gate"]["reasons"]))
    lines.append(f"report: {out['report_uri']}")
    lines.append(f"table: {p['uri']} ({p['rows']:,} rows, {p['users']:,} users, top-{p['k']}), run {p['run_id']}")
    for user, recs in out["sample"].items():
        lines.append(f"  {user}: " + ", ".join(f"{i} ({s:.2f})" for _, i, s in recs))
    return "\n".join(lines)


def check_latest(settings: Settings) -> dict:
    """What a careful consumer checks before using a table; raises DataError naming the broken rule."""
    import polars as pl

    from ncf_tasks.errors import DataError

    storage = Storage(settings)
    pointer = latest_pointer(settings)
    table = load_latest(settings)
    rows = table.select(pl.len()).collect().item()
    if rows != pointer["rows"]:
        raise DataError(f"{pointer['uri']}: {rows} rows, the pointer says {pointer['rows']}")
    per_user = (
        table.group_by("user_id")
        .agg(pl.len().alias("n"), pl.col("rank").min().alias("lo"), pl.col("rank").max().alias("hi"))
        .collect()
    )
    bad = per_user.filter((pl.col("n") > pointer["k"]) | (pl.col("lo") != 1) | (pl.col("hi") != pl.col("n")))
    if bad.height:
        raise DataError(
            f"{pointer['uri']}: {bad.height} user(s) break 'ranks 1..n with n <= K={pointer['k']}', "
            f"e.g. {bad.head(3).to_dicts()}"
        )
    files = RunArtifacts(storage, pointer["run_id"]).manifest().files
    maps = {f: storage.scan_parquet(files[f]) for f in ("users", "items")}
    seen = pl.concat(
        [storage.scan_parquet(files[r]).select("user_idx", "item_idx") for r in ("train", "valid", "test")]
    )
    seen_ids = seen.join(maps["users"], on="user_idx").join(maps["items"].select("item_idx", "item_id"), on="item_idx")
    clash = table.join(seen_ids.select("user_id", "item_id"), on=["user_id", "item_id"], how="semi").collect()
    if clash.height:
        raise DataError(
            f"{pointer['uri']}: {clash.height} recommendation(s) of items the user already interacted "
            f"with, e.g. {clash.head(3).to_dicts()}"
        )
    return {
        "uri": pointer["uri"],
        "run_id": pointer["run_id"],
        "rows": rows,
        "users": per_user.height,
        "k": pointer["k"],
        "checks": ["row count", "ranks 1..n <= K", "no seen items"],
    }
