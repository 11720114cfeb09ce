import polars as pl

from ncf_tasks.generate import SyntheticSpec, synthesize


def test_deterministic_under_seed_and_different_across_seeds():
    spec = SyntheticSpec(users=300, items=200, days=3, events_per_day=2000, seed=5)
    assert synthesize(spec).equals(synthesize(spec))
    assert not synthesize(spec).equals(
        synthesize(SyntheticSpec(users=300, items=200, days=3, events_per_day=2000, seed=6))
    )


def test_days_timestamps_and_duplicates():
    spec = SyntheticSpec(users=300, items=200, days=3, events_per_day=2000, end_date="2026-11-26", duplicate_rate=0.02)
    df = synthesize(spec)
    days = df["event_ts"].dt.date().unique().sort().cast(pl.String).to_list()
    assert days == ["2026-11-24", "2026-11-25", "2026-11-26"]
    assert df.height == 6000 + 120 and df.height - df.unique().height == 120


def test_long_tails_and_learnable_structure():
    df = synthesize(SyntheticSpec(users=1000, items=500, days=2, events_per_day=20000, seed=1))
    item_counts = df["item_id"].value_counts()["count"].sort(descending=True)
    user_counts = df["user_id"].value_counts()["count"].sort(descending=True)
    # top 10% of items draw far more than 10% of events; user activity is skewed too
    assert item_counts[:50].sum() / item_counts.sum() > 0.3
    assert user_counts[:100].sum() / user_counts.sum() > 0.25
    # taste: a user's events concentrate on fewer items than popularity alone would give
    per_user_distinct = df.group_by("user_id").agg(pl.col("item_id").n_unique() / pl.len())
    assert per_user_distinct["item_id"].mean() < 0.97
