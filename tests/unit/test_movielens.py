import pytest
from helpers import require_ml100k

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


def test_ml20m_csv_format(tmp_path):
    """ML-20M / 25M / 32M / latest ship ratings.csv with a header; errors count the header as line 1."""
    p = tmp_path / "ratings.csv"
    p.write_text("userId,movieId,rating,timestamp\r\n1,296,5.0,1147880044\r\n1,306,3.5,1147868817\r\n")
    df = read_ratings(p)
    assert df["user_id"].to_list() == ["1", "1"] and df["item_id"].to_list() == ["306", "296"]
    assert df["value"].to_list() == [3.5, 5.0] and df["event_ts"].min().year == 2006
    p.write_text("userId,movieId,rating,timestamp\n1,296,5.0,1147880044\n1,306,3.5\n")
    with pytest.raises(DataError, match=r"ratings\.csv: line 3 has 3 fields separated by ','"):
        read_ratings(p)
