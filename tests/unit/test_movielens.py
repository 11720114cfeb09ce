import pytest

from conftest import require_ml100k
from ncf_tasks.errors import DataError
from ncf_tasks.movielens import read_ratings


def test_ml100k_counts_and_schema():
    df = read_ratings(require_ml100k())
    assert (df.height, df["user_id"].n_unique(), df["item_id"].n_unique()) == (100_000, 943, 1682)
    assert str(df["event_ts"].dtype) == "Datetime(time_unit='us', time_zone='UTC')"
    assert df["event_ts"].min().year == 1997 and set(df["value"].unique().to_list()) == {1.0, 2.0, 3.0, 4.0, 5.0}


def test_ml1m_format(tmp_path):
    p = tmp_path / "ratings.dat"
    p.write_text("1::1193::5::978300760\n1::661::3::978302109\n")
    df = read_ratings(p)
    assert df["item_id"].to_list() == ["1193", "661"] and df["value"].to_list() == [5.0, 3.0]


def test_bad_line_is_named(tmp_path):
    p = tmp_path / "u.data"
    p.write_text("1\t2\t3\t881250949\n1\t2\t3\n")
    with pytest.raises(DataError, match=r"u\.data: line 2 has 3 fields"):
        read_ratings(p)
    p.write_text("1\t2\tfive\t881250949\n")
    with pytest.raises(DataError, match=r"line 1: field 'rating' is not a number"):
        read_ratings(p)
    with pytest.raises(DataError, match="no such file"):
        read_ratings(tmp_path / "missing.data")
