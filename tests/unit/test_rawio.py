import datetime as dt
import gzip

import polars as pl
import pytest

from ncf_tasks import rawio
from ncf_tasks.config import Settings
from ncf_tasks.errors import DataError
from ncf_tasks.rawio import canonical as rawio_canonical
from ncf_tasks.rawio import csv_fast as rawio_csv

S = Settings.from_env(env={})


def utc(*a):
    return dt.datetime(*a, tzinfo=dt.UTC)


def test_csv_with_iso_offsets_and_naive_times_is_normalised_to_utc():
    data = (
        b"user_id,item_id,event_ts,event_type,value\n"
        b"007,42,2026-11-26T10:00:00Z,view,1.5\n"
        b"8,43,2026-11-26T12:30:00+02:00,click,\n"
        b"9,44,2026-11-26 11:00:00.250,view,2\n"
    )
    df = rawio.read_raw(data, "s3://b/raw/a.csv", S)
    assert df.schema == rawio.canonical_schema()
    assert df["user_id"].to_list() == ["007", "8", "9"]  # leading zeros kept: ids are text
    assert df["event_ts"].to_list() == [
        utc(2026, 11, 26, 10),
        utc(2026, 11, 26, 10, 30),
        utc(2026, 11, 26, 11, 0, 0, 250000),
    ]
    assert df["value"].to_list() == [1.5, None, 2.0]


def test_epoch_numbers_in_configured_unit():
    data = b'{"user_id": 1, "item_id": 2, "event_ts": 1764151200000}\n'
    df = rawio.read_raw(data, "x.jsonl", S.replace(raw_ts_unit="ms"))
    assert df["event_ts"][0] == utc(2025, 11, 26, 10) and df["user_id"][0] == "1"
    assert df["event_type"][0] is None  # optional columns absent -> null, schema complete


def test_epoch_text_in_any_number_form_is_an_epoch_time():
    """A CSV's epoch column as a float writer prints it: with a fraction or an exponent, next to ISO text."""
    data = b"user_id,item_id,event_ts\na,b,1764151200\na,c,1764151200.5\na,d,1.7641512e9\na,e,2025-11-26T10:00:00Z\n"
    df = rawio.read_raw(data, "s3://b/raw/a.csv", S)
    assert df["event_ts"].to_list() == [
        utc(2025, 11, 26, 10),
        utc(2025, 11, 26, 10, 0, 0, 500000),
        utc(2025, 11, 26, 10),
        utc(2025, 11, 26, 10),
    ]


def test_column_mapping_by_settings():
    data = b"uid,sku,when\nu1,i1,2026-11-26T00:00:00Z\n"
    s = S.replace(raw_user_col="uid", raw_item_col="sku", raw_ts_col="when")
    df = rawio.read_raw(gzip.compress(data), "x.csv.gz", s)
    assert df.row(0)[:2] == ("u1", "i1")


def test_wrong_column_names_name_the_file_the_column_and_the_setting():
    data = b"uid,item_id,event_ts\nu1,i1,2026-11-26T00:00:00Z\n"
    with pytest.raises(
        DataError,
        match=r"x\.csv: required column 'user_id' \(mapped to user_id by NCF_RAW_USER_COL\) "
        r"is missing; columns present: \['uid', 'item_id', 'event_ts'\]",
    ):
        rawio.read_raw(data, "x.csv", S)


def test_unparseable_timestamp_names_row_and_column():
    data = b"user_id,item_id,event_ts\nu1,i1,2026-11-26T00:00:00Z\nu2,i2,yesterday\n"
    with pytest.raises(DataError, match=r"x\.csv: row 2, column 'event_ts': value 'yesterday' is not an ISO 8601"):
        rawio.read_raw(data, "x.csv", S)


def test_non_numeric_value_names_row():
    data = b"user_id,item_id,event_ts,value\nu1,i1,2026-11-26T00:00:00Z,abc\n"
    with pytest.raises(DataError, match=r"row 1, column 'value': value 'abc' is not a number"):
        rawio.read_raw(data, "x.csv", S)


def test_ragged_csv_names_the_line():
    data = b"user_id,item_id,event_ts\nu1,i1,2026-11-26T00:00:00Z\nu2,i2,2026-11-26T00:00:00Z,extra\n"
    with pytest.raises(DataError, match=r"x\.csv: not a valid CSV file, line 3: 4 fields where the header has 3"):
        rawio.read_raw(data, "x.csv", S)


def test_corrupt_gzip_and_unknown_extension():
    with pytest.raises(DataError, match="x.csv.gz: not a valid gzip file"):
        rawio.read_raw(b"not gzip", "x.csv.gz", S)
    with pytest.raises(DataError, match="x.xlsx: unsupported file type"):
        rawio.read_raw(b"", "x.xlsx", S)


def test_format_of_ignores_markers():
    assert rawio.format_of("a/_SUCCESS") is None and rawio.format_of("a/.x.csv") is None
    assert rawio.format_of("a/b.ndjson.gz") == ("jsonl", True) and rawio.format_of("p.parquet") == ("parquet", False)


@pytest.mark.parametrize("fmt", rawio.FORMATS)
@pytest.mark.parametrize("gz", [False, True])
def test_encode_then_read_round_trips(fmt, gz):
    df = pl.DataFrame(
        {
            "user_id": ["u1", "u2"],
            "item_id": ["i1", "i2"],
            "event_ts": [utc(2026, 11, 26, 1, 2, 3), utc(2026, 11, 26, 23, 59, 59)],
            "event_type": ["view", None],
            "value": [1.0, None],
        }
    ).cast({"event_ts": pl.Datetime("us", "UTC")})
    back = rawio.read_raw(rawio.encode(df, fmt, gz), rawio.file_name("x", fmt, gz), S)
    assert back.equals(df)


def test_fixed_width_timestamps_decode_like_the_general_parser_and_reject_impossible_ones():
    text = [
        "2026-11-26T10:00:00Z",
        "2026-11-26 10:00:00",
        "2026-11-26T10:00:00.5Z",
        "2026-11-26T10:00:00.123456",
        "2024-02-29T23:59:59.999Z",
        "2026-02-31T10:00:00Z",
        "2026-11-26T24:00:00Z",
        "2026-11-26T10:60:00Z",
        "2026-11-26T10:00:00.1234567Z",
        "2026-11-26T10:00:00+02:00",
        "26-11-2026 10:00",
        None,
    ]
    fast = pl.DataFrame({"s": text}).select(rawio.fixed_iso_utc(pl.col("s"))).to_series().to_list()
    assert fast[:5] == [
        utc(2026, 11, 26, 10),
        utc(2026, 11, 26, 10),
        utc(2026, 11, 26, 10, 0, 0, 500000),
        utc(2026, 11, 26, 10, 0, 0, 123456),
        utc(2024, 2, 29, 23, 59, 59, 999000),
    ]
    assert fast[5:] == [None] * 7  # impossible dates/times and other shapes: left to the general path
    general = rawio_canonical.parse_iso_utc(pl.Series(text[:5] + text[9:10]))
    assert general.to_list() == fast[:5] + [utc(2026, 11, 26, 8)]


def test_csv_fast_path_gives_the_general_paths_frame():
    """The streaming CSV path must be indistinguishable from reading all text and casting it."""
    data = (
        b"user_id,item_id,event_ts,value,extra\n"
        b"007,42,2026-11-26T10:00:00.120Z,1.5,a\n"
        b"8,43,2026-11-26T12:30:00Z,,b\n"
        b"9,44,2026-11-26 11:00:00,2,\n"
    )
    fast = rawio_csv._csv_fast(data, "x.csv", S)
    assert fast is not None
    general = rawio.to_canonical(pl.read_csv(data, infer_schema=False), "x.csv", S)
    assert fast.equals(general) and fast.schema == rawio.canonical_schema()
    assert fast["event_type"].null_count() == 3  # optional column absent -> null
    # any other shape falls back to the general path, which parses it or names the row
    assert rawio_csv._csv_fast(data.replace(b"12:30:00Z", b"12:30:00+02:00"), "x.csv", S) is None
    assert rawio_csv._csv_fast(data.replace(b",1.5,", b",1.5x,"), "x.csv", S) is None


def test_truncated_csv_line_is_named_on_the_streaming_path_too():
    data = b"user_id,item_id,event_ts,value\nu1,i1,2026-11-26T00:00:00Z,1\nu2,i2\nu3,i3,2026-11-26T00:00:01Z,\n"
    with pytest.raises(DataError, match=r"x\.csv: not a valid CSV file, line 3: 2 fields where the header has 4"):
        rawio_csv._csv_fast(data, "x.csv", S)
    ok = rawio_csv._csv_fast(data.replace(b"u2,i2\n", b""), "x.csv", S)  # an empty value alone is not an error
    assert ok is not None and ok["value"].to_list() == [1.0, None]


def test_a_duplicate_key_is_found_under_a_non_ascii_column_name():
    """The bulk guard counts the column's quoted name as producers write it (UTF-8, not a \\u escape)."""
    s = Settings.from_env(env={"NCF_RAW_USER_COL": "utilisateur_é"})
    line = '{"utilisateur_é": "u1", "item_id": "i1", "event_ts": "2026-11-26T01:00:00Z", "utilisateur_é": "u2"}\n'
    with pytest.raises(DataError, match=r"x\.jsonl: line 2: key 'utilisateur_é' appears more than once"):
        rawio.read_raw(
            ('{"utilisateur_é": "u0", "item_id": "i0", "event_ts": "2026-11-26T00:00:00Z"}\n' + line).encode(),
            "x.jsonl",
            s,
        )


def test_ids_in_two_unicode_forms_are_one_id_by_default_and_kept_apart_when_off():
    """'café' typed with a precomposed é (NFC) and with e + a combining accent (NFD) are one user after ingest
    (id_normalization=NFC, the default); with none they stay two, as logged. ASCII ids pass untouched."""
    raw = pl.DataFrame(
        {
            "user_id": ["caf\u00e9", "cafe\u0301", "plain"],
            "item_id": ["\uff11", "1", "i"],  # a full-width digit one: only NFKC folds it
            "event_ts": ["2026-11-26T01:00:00Z"] * 3,
        }
    )
    nfc = rawio.to_canonical(raw, "x.csv", S)
    assert nfc["user_id"].to_list() == ["caf\u00e9", "caf\u00e9", "plain"] and nfc["user_id"].n_unique() == 2
    assert nfc["item_id"].n_unique() == 3
    assert rawio.to_canonical(raw, "x.csv", S.replace(id_normalization="none"))["user_id"].n_unique() == 3
    assert rawio.to_canonical(raw, "x.csv", S.replace(id_normalization="NFKC"))["item_id"].to_list() == ["1", "1", "i"]
