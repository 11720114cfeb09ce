"""The training-set core on small frames and on MovieLens 100K."""

import datetime as dt

import polars as pl
from helpers import require_ml100k
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from ncf_tasks.build import build_training_set, k_core, tie_key
from ncf_tasks.config import Settings
from ncf_tasks.movielens import read_ratings

S = Settings.from_env(env={}, eval_negatives=5, min_user_interactions=1)
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def events(rows):
    return pl.DataFrame(
        [(u, i, T0 + dt.timedelta(hours=h)) for u, i, h in rows],
        schema={"user_id": pl.String, "item_id": pl.String, "event_ts": pl.Datetime("us", "UTC")},
        orient="row",
    )


@st.composite
def logs(draw):
    n_users, n_items = draw(st.integers(1, 12)), draw(st.integers(8, 30))
    rows = draw(
        st.lists(
            st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1), st.integers(0, 5)),
            min_size=1,
            max_size=150,
        )
    )
    return events([(f"u{u}", f"i{i}", h) for u, i, h in rows])


@hsettings(max_examples=40, deadline=None)
@given(logs())
def test_split_invariants(ev):
    from ncf_tasks.errors import DataError

    try:
        ts = build_training_set(ev, S)
    except DataError as exc:  # a set nobody can be evaluated on is refused, never trained
        assert "no user can be evaluated" in str(exc)
        counts = ev.unique(["user_id", "item_id"]).group_by("user_id").len()["len"]
        n_items = ev["item_id"].n_unique()
        assert not ((counts >= 3) & (n_items - counts >= S.eval_negatives)).any()
        return
    # id maps: no user or item lost or invented, indices contiguous
    assert sorted(ts.users["user_id"]) == sorted(ev["user_id"].unique())
    assert ts.users["user_idx"].to_list() == list(range(ts.users.height))
    assert ts.items["item_idx"].to_list() == list(range(ts.items.height))
    latest = (
        ev.group_by("user_id", "item_id")
        .agg(pl.col("event_ts").max())
        .join(ts.users, on="user_id")
        .join(ts.items.select("item_idx", "item_id"), on="item_id")
    )
    per_user = latest.group_by("user_idx").agg(pl.len().alias("n"), pl.col("event_ts").max().alias("last"))
    test = ts.test.join(latest, on=["user_idx", "item_idx"]).join(per_user, on="user_idx")
    assert (test["event_ts"] == test["last"]).all()  # the test item is the latest
    for held in (ts.valid, ts.test):
        for row in held.iter_rows(named=True):
            history = set(latest.filter(pl.col("user_idx") == row["user_idx"])["item_idx"])
            assert len(set(row["negatives"])) == len(row["negatives"]) == S.eval_negatives
            assert not history & set(row["negatives"])
    # every pair lands in exactly one of train / valid / test; users with < 3 items are train-only
    n3 = per_user.filter(pl.col("n") >= 3).height
    assert ts.train.height + 2 * n3 == latest.height and ts.train.unique().height == ts.train.height
    excluded = ts.report["eval_users_excluded_too_dense"]
    assert ts.valid.height + excluded["valid"] == n3 == ts.test.height + excluded["test"]


def test_ties_broken_by_the_pair_hash_and_reruns_agree():
    ev = events([("u", "a", 1), ("u", "b", 5), ("u", "c", 5), ("u", "d", 0)] + [("v", x, 0) for x in "abcdefghij"])
    one, two = build_training_set(ev, S), build_training_set(ev.reverse(), S)
    assert one.test.equals(two.test) and one.valid.equals(two.valid) and one.train.equals(two.train)
    item = dict(zip(one.items["item_idx"], one.items["item_id"]))
    u = one.users.filter(pl.col("user_id") == "u")["user_idx"][0]
    test, valid = (item[t.filter(pl.col("user_idx") == u)["item_idx"][0]] for t in (one.test, one.valid))
    # b and c share the latest time: the higher tie key is the test item, the other the validation item
    keys = dict(events([("u", "b", 5), ("u", "c", 5)]).select("item_id", tie_key()).iter_rows())
    assert {test, valid} == {"b", "c"} and keys[test] > keys[valid]


def test_tie_break_carries_no_id_order():
    """400 users each rated items x0..x3 in the same second: an id order would hold out the same item for
    all of them (the bias that put obscure items into MovieLens 100K's test split); the hash spreads it."""
    ev = events([(f"u{n}", f"x{k}", 0) for n in range(400) for k in range(4)] + [("w", f"y{k}", 0) for k in range(8)])
    held = build_training_set(ev, S)
    for split in (held.test, held.valid):
        share = split.group_by("item_idx").len()["len"] / split.height
        assert (
            split.height == 400 and share.len() == 4
        )  # w: too dense to evaluate and share.min() > 0.15 and share.max() < 0.35


def test_k_core_applied_until_stable():
    # i3 has 1 user; dropping it leaves u2 with 1 item, which must go too
    df = pl.DataFrame(
        {"user_id": ["u1", "u1", "u2", "u2", "u3", "u3"], "item_id": ["i1", "i2", "i1", "i3", "i1", "i2"]}
    )
    out, rep = k_core(df, 2, 2)
    assert sorted(out["user_id"].unique()) == ["u1", "u3"] and rep["users_dropped"] == 1 and rep["rounds"] >= 2


def test_ml100k_split_statistics():
    ts = build_training_set(read_ratings(require_ml100k()), Settings.from_env(env={}))
    assert (ts.users.height, ts.items.height) == (943, 1682)
    assert ts.test.height == ts.valid.height == 943 and ts.test["user_idx"].n_unique() == 943
    assert ts.train.height == 100_000 - 2 * 943
    assert ts.test["negatives"].arr.len().unique().to_list() == [99]
    assert ts.items["train_count"].sum() == ts.train.height


def test_more_eval_negatives_than_the_catalogue_allows_is_a_clear_error():
    import pytest

    from ncf_tasks.errors import DataError

    ev = pl.DataFrame(
        {
            "user_id": [f"u{u}" for u in range(4) for _ in range(5)],
            "item_id": [f"i{i}" for _ in range(4) for i in range(5)],
            "event_ts": [dt.datetime(2026, 11, 26, h, tzinfo=dt.UTC) for _ in range(4) for h in range(5)],
        }
    )
    with pytest.raises(DataError, match=r"no user can be evaluated: .*eval_negatives=99 .* the catalogue has 5 items"):
        build_training_set(ev, Settings.from_env(env={}))
