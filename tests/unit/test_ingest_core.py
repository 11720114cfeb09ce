import datetime as dt

import polars as pl

from ncf_tasks.ingest import drop_exact_duplicates
from ncf_tasks.rawio import canonical_schema

T = dt.datetime(2026, 11, 26, tzinfo=dt.timezone.utc)


def test_exact_duplicates_dropped_nulls_compared_as_values():
    rows = [
        (None, None, None, None, None), (None, None, None, None, None),
        ("u1", "i1", T, "view", 1.0), ("u1", "i1", T, "view", 1.0),   # re-send
        ("u1", "i1", T, "view", None), ("u1", "i1", T, "view", None),  # re-send with a null value
        ("u1", "i1", T, "click", 1.0),                                 # differs in one column: kept
    ]
    df = pl.DataFrame(rows, schema=canonical_schema(), orient="row")
    out = drop_exact_duplicates(df)
    assert out.height == 4 and out.unique().height == 4
    assert drop_exact_duplicates(out.reverse()).equals(out)  # same output whatever the input order
