import datetime as dt

import polars as pl
from hypothesis import given
from hypothesis import strategies as st

from ncf_tasks.ingest_core import SORT_COLUMNS, drop_exact_duplicates
from ncf_tasks.rawio import canonical_schema

T = dt.datetime(2026, 11, 26, tzinfo=dt.UTC)


def test_exact_duplicates_dropped_nulls_compared_as_values():
    rows = [
        (None, None, None, None, None),
        (None, None, None, None, None),
        ("u1", "i1", T, "view", 1.0),
        ("u1", "i1", T, "view", 1.0),  # re-send
        ("u1", "i1", T, "view", None),
        ("u1", "i1", T, "view", None),  # re-send with a null value
        ("u1", "i1", T, "click", 1.0),  # differs in one column: kept
    ]
    df = pl.DataFrame(rows, schema=canonical_schema(), orient="row")
    out = drop_exact_duplicates(df)
    assert out.height == 4 and out.unique().height == 4
    assert drop_exact_duplicates(out.reverse()).equals(out)  # same output whatever the input order


def test_time_ranges_concatenate_to_the_whole_day_deduplicated():
    """Range by range must give exactly the one big sort: duplicates and ties never straddle a range."""
    import numpy as np

    from ncf_tasks.ingest_core import deduplicated_time_ranges

    rng = np.random.default_rng(7)
    n = 3_000
    ts = [T + dt.timedelta(seconds=int(s)) for s in rng.integers(0, 40, n)]  # many rows per timestamp
    df = pl.DataFrame(
        {
            "user_id": rng.choice(["u1", "u2", "u3"], n),
            "item_id": rng.choice(["i1", "i2"], n),
            "event_ts": ts,
            "event_type": rng.choice(["view", "click"], n),
            "value": rng.choice([1.0, 2.0], n),
        },
        schema=canonical_schema(),
    )
    df = df.with_columns(
        pl.when(pl.int_range(pl.len()) % 97 == 0).then(None).otherwise(pl.col("event_ts")).alias("event_ts")
    )  # some null timestamps, which sort last
    frames = [df.slice(0, 1_000), df.slice(1_000, 1_500), df.slice(2_500)]
    whole = drop_exact_duplicates(df)
    assert whole.equals(df.unique().sort(list(SORT_COLUMNS), nulls_last=True))  # the plain definition
    in_order = [f.sort("event_ts", nulls_last=True) for f in frames]  # sliced by binary search, not filtered
    for files in (frames, in_order, [in_order[0], frames[1], in_order[2]]):
        for rows_per_range in (1, 50, 700, 10_000):
            parts = list(deduplicated_time_ranges(files, rows_per_range))
            assert pl.concat(parts).equals(whole)
    assert len(list(deduplicated_time_ranges(frames, 700))) > 1
    empty = list(deduplicated_time_ranges([df.clear()], 700))
    assert len(empty) == 1 and empty[0].height == 0 and empty[0].schema == canonical_schema()


def test_file_groups_are_consecutive_runs_of_about_equal_bytes_and_never_empty():
    from ncf_tasks.ingest_mapped import file_groups

    def names(sizes, n):
        files = [{"key": f"raw/dt=2026-11-26/f{i:02d}.csv", "size": s} for i, s in enumerate(sizes)]
        return [[int(o["key"][-6:-4]) for o in g] for g in file_groups(files[::-1], n)]  # listing order is irrelevant

    assert names([10] * 8, 4) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert names([10] * 3, 4) == [[0], [1], [2]]  # capped by the files
    assert names([100, 1, 1, 1], 2) == [[0], [1, 2, 3]]
    assert names([1, 1, 1, 100], 3) == [[0, 1], [2], [3]]
    assert names([100, 1, 1], 3) == [[0], [1], [2]]  # every group gets a file, in name order


def test_the_commit_reads_only_where_parts_overlap_in_time(monkeypatch):
    from ncf_tasks import ingest_mapped

    part = {"spans": [[0, 9, 10, 0], [10, 19, 10, 0], [20, 29, 10, 0], [40, 49, 10, 2]]}
    parts = [{"spans": [[5, 25, 30, 0]]}, {"spans": [[60, 70, 5, 1]]}, part]
    assert ingest_mapped._windows(parts) == [(5, 26), None]  # half-open, in µs; nulls in two parts: compared too
    assert ingest_mapped._windows([part, {"spans": [[30, 39, 10, 0]]}]) == []  # rotated files: nothing to read
    assert ingest_mapped._windows([part, {"spans": [[29, 39, 10, 0]]}]) == [(29, 30)]  # one shared instant
    three = [{"spans": [[0, 9, 5, 0]]}, {"spans": [[5, 14, 5, 0]]}, {"spans": [[12, 20, 5, 0]]}]
    assert ingest_mapped._windows(three) == [(5, 10), (12, 15)]  # only where two or more parts meet
    chain = [{"spans": [[0, 9, 5, 0]]}, {"spans": [[5, 14, 5, 0]]}, {"spans": [[10, 20, 5, 0]]}]
    assert ingest_mapped._windows(chain) == [(5, 15)]  # regions that touch are one
    monkeypatch.setattr(ingest_mapped, "WINDOW_ROWS", 10)  # ~10 rows a window, a span's rows spread over its time
    assert ingest_mapped._windows(parts) == [(5, 10), (10, 15), (15, 20), (20, 25), (25, 26), None]
    aligned = [{"spans": [[0, 99, 8, 0]]}] * 4  # four parts' row groups over the same time: cut inside them
    assert ingest_mapped._windows(aligned) == [(0, 32), (32, 64), (64, 96), (96, 100)]
    assert ingest_mapped._windows([{"spans": [[7, 7, 50, 0]]}] * 2) == [(7, 8)]  # an instant cannot be cut


def _part(cuts: list[int]) -> dict:
    """A part's row-group spans from sorted times: consecutive pairs, closed, 5 rows each."""
    return {"spans": [[lo, hi, 5, 0] for lo, hi in zip(cuts[:-1], cuts[1:])]}


@given(
    st.lists(st.lists(st.integers(-60, 60), min_size=2, max_size=6).map(sorted), min_size=1, max_size=5),
    st.integers(1, 30),
)
def test_the_commit_windows_cover_every_time_two_parts_share_and_nothing_else(parts, budget):
    from ncf_tasks import ingest_mapped

    parts = [_part(p) for p in parts]
    old, ingest_mapped.WINDOW_ROWS = ingest_mapped.WINDOW_ROWS, budget
    try:
        windows = ingest_mapped._windows(parts)
    finally:
        ingest_mapped.WINDOW_ROWS = old
    times = range(-61, 62)  # before 1970 too: the sweep has no sentinel time
    covered = [sum(any(lo <= t <= hi for lo, hi, _, _ in p["spans"]) for p in parts) for t in times]
    inside = [any(lo <= t < hi for lo, hi in windows) for t in times]
    assert all(a < b for a, b in windows) and all(w[1] <= v[0] for w, v in zip(windows, windows[1:]))
    assert inside == [c >= 2 for c in covered]
